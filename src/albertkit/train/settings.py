"""Training settings, defined once: a dataclass per training command whose fields are the CLI flags, the YAML keys
of `--config`, the defaults and the run folder's `config.yaml`.

A field is declared with `setting(default, help, flag=..., choices=..., minimum=...)`. A command's class inherits
the loop's fields from `TrainSettings` and states its own defaults as plain field defaults (the help, flag and
choices stay those of the base field). Values are layered: defaults < the `--config` file < flags given.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic
from albertkit.runtime.device import DEVICE_HELP, PRECISIONS, resolve_device
from albertkit.train.optim import OPTIMIZER_NAMES, SCHEDULE_KINDS
from albertkit.train.trackers import check_report_to

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
STRATEGIES = ("ddp", "fsdp")
Settings = TypeVar("Settings", bound="TrainSettings")


def setting(
    default: Any = None,
    help: str = "",
    *,
    flag: str | None = None,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    unset: str | None = None,
    keys: Iterable[str] | None = None,
    check: Callable[[Any], Any] | None = None,
) -> Any:
    """A settings field: its default, its help text, its flag (default `--field-name`), the values it allows, its
    smallest value, and what a None default means (`unset`, shown as the default in the help). A mapping field
    (its allowed `keys` given) is a nested section of the YAML file and has no flag. `check` takes the value and
    returns it (normalized) or raises ValueError with the message a user sees."""
    metadata = {"help": help, "flag": flag, "choices": tuple(choices) if choices else None, "minimum": minimum,
                "unset": unset, "keys": frozenset(keys) if keys is not None else None, "check": check}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class TrainSettings:
    """How the loop trains; shared by `pretrain run`, `finetune` and `embed-train` (each sets its own defaults)."""

    max_steps: int | None = setting(None, "optimizer steps to run", minimum=1,
                                      unset="--epochs passes over the data")
    epochs: float = setting(1.0, "passes over the training data when --max-steps is not set", minimum=0)
    time_budget_minutes: float | None = setting(
        None, "minutes of training (summed over resumes) after which the run evaluates, saves and stops; the "
        "learning-rate decay is planned to end then", flag="--time-budget", minimum=0)
    batch_size: int = setting(32, "global batch: all processes and accumulation steps together", minimum=1)
    micro_batch_size: int | None = setting(
        None, "rows per forward pass and process; smaller than the batch means gradient accumulation", minimum=1,
        unset="the batch / processes")
    optimizer: str = setting("adamw", "lamb scales each layer's step to its weights (for large batches)",
                             choices=OPTIMIZER_NAMES)
    learning_rate: float = setting(5e-5, "peak learning rate", flag="--lr", minimum=0)
    weight_decay: float = setting(0.01, "decoupled weight decay (none on biases and LayerNorm)", minimum=0)
    adam_epsilon: float = setting(1e-6, "epsilon of the optimizer's denominator", minimum=0)
    warmup_steps: int | None = setting(None, "steps of linear warmup", minimum=0,
                                       unset="--warmup-ratio of the steps")
    warmup_ratio: float = setting(0.1, "share of the steps spent in warmup when --warmup-steps is not set",
                                  minimum=0)
    schedule: str = setting("linear", "learning-rate decay after warmup", choices=SCHEDULE_KINDS)
    max_grad_norm: float = setting(1.0, "clip the gradient norm to this", minimum=0)
    device: str = setting("auto", DEVICE_HELP)
    precision: str = setting("auto", "auto: bf16 on CUDA, fp32 on CPU; fp16 uses loss scaling", choices=PRECISIONS)
    compile: bool = setting(False, "torch.compile the model")
    strategy: str = setting(
        "ddp", "several processes: ddp keeps the whole model in each; fsdp shards parameters, gradients and optimizer "
        "state over them (FSDP2), with sharded checkpoints", choices=STRATEGIES)
    gradient_checkpointing: bool = setting(
        False, "recompute each application of the shared layer in the backward pass instead of keeping its "
        "activations: much less activation memory for about a third more compute")
    seed: int = setting(0, "seed of the initial weights, data order, masks and dropout")
    eval_every: int | None = setting(None, "steps between evaluations", minimum=1, unset="one per epoch")
    early_stopping_patience: int | None = setting(
        None, "evaluations without improvement of the dev metric before the run stops", minimum=1)
    save_every: int | None = setting(None, "steps between checkpoints", minimum=1)
    save_every_minutes: float | None = setting(30.0, "minutes between checkpoints (0: no timed checkpoints)",
                                               minimum=0)
    keep_last: int = setting(2, "checkpoints kept in OUT/checkpoints", minimum=1)
    log_every: int = setting(10, "steps between log records", minimum=1)
    report_to: str = setting("auto", "experiment trackers, comma-separated: tensorboard, wandb, mlflow, or none "
                             "(auto: tensorboard when installed)", check=check_report_to)
    max_bad_steps: int = setting(10, "consecutive steps with a non-finite loss or gradient before the run stops",
                                 minimum=1)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, check_value(type(self), field.name, getattr(self, field.name)))

    def resolve_warmup(self, total_steps: int) -> int:
        """Warmup steps: `warmup_steps` when set, else `warmup_ratio` of `total_steps`."""
        return self.warmup_steps if self.warmup_steps is not None else int(self.warmup_ratio * total_steps)


def field_metadata(cls: type, name: str) -> Mapping[str, Any]:
    """The `setting(...)` metadata of field `name`: a subclass that only changes a default keeps its base's."""
    for klass in cls.__mro__:
        field = getattr(klass, "__dataclass_fields__", {}).get(name)
        if field is not None and field.metadata:
            return field.metadata
    return {"help": "", "flag": None, "choices": None, "minimum": None, "unset": None, "keys": None, "check": None}


def check_value(cls: type, name: str, value: Any, source: str | Path | None = None,
                lines: Mapping[str, int] | None = None) -> Any:
    """`value` as field `name` of `cls` takes it (YAML's 1e-4 string as a float), or a UserError naming `source`
    and the line (from `lines`, as `read_yaml_config` gives them) when it has the wrong type, is not one of the
    choices, is below the minimum or (a nested section) has an unknown key."""
    lines = lines or {}
    line = lines.get(name)
    value = _typed(name, value, typing.get_type_hints(cls)[name], source, line)
    metadata = field_metadata(cls, name)
    if isinstance(value, dict) and metadata["keys"] is not None:
        unknown = [key for key in value if key not in metadata["keys"]]
        if unknown:
            raise UserError(f"unknown {name} key {unknown[0]!r}{_suggestion(unknown[0], metadata['keys'])}", source,
                            lines.get(f"{name}.{unknown[0]}", line))
    if value is None or isinstance(value, bool | dict):
        return value
    if metadata["choices"] and value not in metadata["choices"]:
        raise UserError(f"{name} must be one of {', '.join(map(str, metadata['choices']))}, not {value!r}",
                        source, line)
    if metadata["minimum"] is not None and isinstance(value, int | float) and value < metadata["minimum"]:
        raise UserError(f"{name} must be at least {metadata['minimum']:g}, not {value!r}", source, line)
    if metadata["check"] is not None:
        try:
            return metadata["check"](value)
        except ValueError as err:
            raise UserError(str(err), source, line) from err
    return value


def _typed(name: str, value: Any, hint: Any, source: str | Path | None, line: int | None) -> Any:
    """`value` as the type `hint` (int, float, str, bool, dict, or a union of them with None), or a UserError."""
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    allowed = tuple(typing.get_origin(t) or t for t in allowed)  # dict[str, Any] -> dict
    if value is None and type(None) in allowed:
        return value
    if float in allowed and isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        except ValueError:
            pass
    if isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool)):
        return value
    expected = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise UserError(f"{name} must be {expected}, not {value!r}", source, line)


def load_settings(cls: type[Settings], config_path: str | Path | None = None,
                  flags: Mapping[str, Any] | None = None) -> Settings:
    """`cls`'s defaults, overridden by the YAML file `config_path`, overridden by `flags` (None there is a value:
    the CLI passes only the flags typed, see `given_settings`).

    A key of the file that is not a field, or a value of the wrong type or out of range, is a UserError
    naming the file and line; an unknown flag name is a TypeError (a mistake in the calling code)."""
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(flags or {}) - names)
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(unknown)} for {cls.__name__}; known: {', '.join(sorted(names))}")
    data, lines = read_yaml_config(config_path)
    values = {}
    for key, value in data.items():
        if key not in names:
            raise UserError(f"unknown config key {key!r}{_suggestion(key, names)}", config_path, lines.get(key))
        values[key] = check_value(cls, key, value, config_path, lines)
    values.update({key: check_value(cls, key, value) for key, value in (flags or {}).items()})
    settings = cls(**values)
    resolve_device(settings.device)  # a device that is not there is refused before the run writes anything
    return settings


def _suggestion(key: str, known: Iterable[str]) -> str:
    """"; did you mean 'x'?" for a near miss, else the list of known keys."""
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"


def read_yaml_config(path: str | Path | None) -> tuple[dict[str, Any], dict[str, int]]:
    """The mapping of a YAML file ({} for None) and the line of each key ("key", and "key.name" one level down).
    A malformed file, a repeated key or a file that is not a mapping is a UserError naming the file (and the line
    where YAML gives one)."""
    if path is None:
        return {}, {}
    path = Path(path)
    if not path.is_file():
        raise UserError("config file not found", path)
    loader = None
    try:
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise UserError(f"invalid YAML: {getattr(err, 'problem', err)}", path, mark.line + 1 if mark else None) from err
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise UserError("a config file must be a mapping of keys to values", path)
    return {str(key): value for key, value in data.items()}, _key_lines(node, path)


def _key_lines(node: yaml.Node | None, path: Path, prefix: str = "") -> dict[str, int]:
    """Line of each key of a mapping node and of the mappings directly inside it; a repeated key is a UserError."""
    lines: dict[str, int] = {}
    for key_node, value_node in node.value if isinstance(node, yaml.MappingNode) else []:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        key, line = prefix + key_node.value, key_node.start_mark.line + 1
        if key in lines:
            raise UserError(f"key {key!r} appears twice (lines {lines[key]} and {line})", path, line)
        lines[key] = line
        if not prefix:
            lines.update(_key_lines(value_node, path, key + "."))
    return lines


def add_settings_flags(parser: argparse.ArgumentParser, cls: type[TrainSettings]) -> None:
    """`--config`, `--resume` and one flag per field of `cls`: the loop's fields in one group, the command's own
    in another; every flag defaults to None, so that `given_settings` sees which ones were typed."""
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of settings (any of the flags below, "
                        "spelled with underscores); flags given here override it")
    parser.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --out")
    loop_names = {field.name for field in dataclasses.fields(TrainSettings)}
    groups = {True: parser.add_argument_group("training loop"),
              False: parser.add_argument_group(f"{parser.prog.removeprefix('albertkit ')} settings")}
    hints = typing.get_type_hints(cls)
    for field in _flag_fields(cls):
        metadata = field_metadata(cls, field.name)
        flag = metadata["flag"] or "--" + field.name.replace("_", "-")
        default = metadata["unset"] if field.default is None else field.default
        shown = f" (default: {default})" if default is not None else ""
        options: dict[str, Any] = {"dest": field.name, "default": None,
                                   "help": (metadata["help"] + shown).replace("%", "%%")}
        kinds = typing.get_args(hints[field.name]) or (hints[field.name],)
        if bool in kinds:
            options["action"] = argparse.BooleanOptionalAction
        elif metadata["choices"]:
            options.update(type=_flag_type(kinds), choices=metadata["choices"])
        else:  # named after the flag: --lr LR, not --lr LEARNING_RATE
            options.update(type=_flag_type(kinds), metavar=flag[2:].upper().replace("-", "_"))
        groups[field.name in loop_names].add_argument(flag, **options)


def _flag_type(kinds: tuple[type, ...]) -> Any:
    """How a flag parses its text: a column (`str | int`) is an index when it reads as one, else a name."""
    if str in kinds and int in kinds:
        return _column
    return next(kind for kind in (int, float, str) if kind in kinds)


def _column(value: str) -> str | int:
    try:
        return int(value)
    except ValueError:
        return value


def given_settings(args: argparse.Namespace, cls: type[TrainSettings]) -> dict[str, Any]:
    """The settings flags typed on the command line (left at None: not given)."""
    return {field.name: getattr(args, field.name) for field in _flag_fields(cls)
            if getattr(args, field.name, None) is not None}


def _flag_fields(cls: type[TrainSettings]) -> list[dataclasses.Field]:
    """The fields that have a flag: all but the nested sections of the YAML file (such as `model:`)."""
    return [field for field in dataclasses.fields(cls) if field_metadata(cls, field.name)["keys"] is None]


def save_settings(run_dir: Path, settings: TrainSettings, command: str, inputs: Mapping[str, Any],
                  resume: bool = False) -> None:
    """Write RUN_DIR/config.yaml: every setting of the run (usable as `--config`) under a header naming the
    command and its inputs. On resume, settings that differ from the saved ones are reported first."""
    path = run_dir / CONFIG_NAME
    values = dataclasses.asdict(settings)
    if resume and path.is_file():
        before = read_yaml_config(path)[0]
        changed = [f"{key} {before.get(key)!r} -> {value!r}" for key, value in values.items()
                   if key in before and before[key] != value]
        if changed:
            logger.warning("resuming with settings that differ from %s: %s", path, "; ".join(changed))
    header = [f"# The settings of this run of `albertkit {command}` (defaults < --config file < flags);",
              "# pass this file as --config to run it again.",
              *(f"# {key}: {value}" for key, value in inputs.items() if value is not None)]
    body = yaml.safe_dump(values, sort_keys=False, allow_unicode=True)
    write_text_atomic(path, "\n".join(header) + "\n" + body)
