"""Command-line options that select the VLM backend (a local model or a served one), shared by
`ground`, `ask`, `eval` and `reward`. Each option maps to the PerceptionConfig field of the same
name (node parameter and YAML key); an option not given keeps that field's default."""

from __future__ import annotations

from spatial_ros.vlm.served_config import BACKENDS, IMAGE_FORMATS, SERVED_FIELDS

# option -> (PerceptionConfig field, type, choices)
_OPTIONS = {
    "--referring": ("referring", str, ("program", "model")),
    "--backend": ("backend", str, BACKENDS),
    "--server-url": ("server_url", str, None),
    "--served-model": ("served_model", str, None),
    "--api-key-env": ("api_key_env", str, None),
    "--image-max-side": ("image_max_side", int, None),
    "--image-format": ("image_format", str, IMAGE_FORMATS),
    "--jpeg-quality": ("jpeg_quality", int, None),
    "--timeout": ("timeout_s", float, None),
    "--retries": ("retries", int, None),
    "--concurrency": ("concurrency", int, None),
}


def add_served_arguments(parser) -> None:
    """Add the backend options (an argument group) to a subcommand's parser."""
    g = parser.add_argument_group(
        "VLM backend", "--backend openai asks a model served over HTTP (vLLM, SGLang, Ollama, "
        "llama.cpp) instead of loading --model; the API key is read from the environment "
        "variable named by --api-key-env")
    for opt, (name, typ, choices) in _OPTIONS.items():
        if name == "backend":
            help_text = "transformers (load --model here, the default) or openai (a served model)"
        elif name == "referring":
            help_text = ("program (the default: the query is parsed, names come from each "
                         "candidate's shape and colour, spatial words are evaluated in 3D; the "
                         "model breaks ties and answers what the program cannot) or model (every "
                         "query goes to the model as written)")
        else:
            f = SERVED_FIELDS[name]
            help_text = f"{f.metadata['help']} (default: {f.default!r})"
        g.add_argument(opt, dest=name, type=typ, choices=choices, default=None,
                       help=help_text.replace("%", "%%"))


def served_values(args) -> dict:
    """The backend options given on the command line, as PerceptionConfig field values."""
    return {name: getattr(args, name) for name, _, _ in _OPTIONS.values()
            if getattr(args, name, None) is not None}
