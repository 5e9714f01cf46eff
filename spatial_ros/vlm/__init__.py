"""The spatial VLM engine (ROS-free): Cube-LLM box codec, prompts, visual prompts, metric lifting
and fusion with specialist candidates, inference backends and the tiny-model factory.

Import the submodules directly (``spatial_ros.vlm.codec`` ...); torch and transformers are only
imported by ``backend`` / ``tiny`` when a model is actually used.
"""
