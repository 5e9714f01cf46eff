"""Dataset loaders (KITTI, SUN RGB-D) shared by evaluation and training data generation."""
