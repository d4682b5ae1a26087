"""`albertkit distill`: a smaller student learns a fine-tuned teacher's task (classification, pair, regression, NER)
from its soft targets, the hard labels and optionally its hidden states, through the one training loop.

Loss = soft_weight * soft + (1 - soft_weight) * hard + hidden_weight * hidden, where soft is the KL divergence
between the teacher's and the student's distributions at `temperature` (times T², Hinton et al. 2015; regression:
the MSE to the teacher's value), hard the task's own loss on the labels, and hidden the MSE between the teacher's
last hidden states and the student's, projected to the teacher's width by a linear map trained with the student
and dropped after. Unlabeled examples (`--unlabeled`) add soft and hidden terms only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from albertkit.errors import UserError
from albertkit.inference.predict import load_finetuned
from albertkit.io.tables import reporting_skipped_rows
from albertkit.modeling.config import PRESETS, AlbertConfig
from albertkit.modeling.folder import write_model_folder
from albertkit.modeling.model import IGNORE_INDEX, AlbertForTokenClassification, AlbertModel, AlbertOutput
from albertkit.tasks.base import TASK_NAMES, get_task
from albertkit.tasks.spec import TaskSpec, featurize, read_examples
from albertkit.train.finetune import FinetuningTask
from albertkit.train.loop import TrainResult, train
from albertkit.train.settings import TrainSettings, load_settings, save_settings, setting

DISTILLABLE_OUTPUTS = ("classes", "value", "token_classes")  # soft targets are a softmax or a number
SHAPE_FIELDS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "embedding_size")


@dataclass
class DistillSettings(TrainSettings):
    """`albertkit distill`: the loop's settings with a student's defaults (AdamW at 1e-4, three epochs) and the
    distillation loss."""

    epochs: float = 3.0
    learning_rate: float = 1e-4
    log_every: int = 20
    temperature: float = setting(2.0, "softmax temperature of the soft targets", minimum=1e-3)
    soft_weight: float = setting(0.5, "weight of the soft-target loss; the hard labels get 1 minus it (0: no "
                                 "teacher, the student fine-tuned on the labels alone)", minimum=0)
    hidden_weight: float = setting(0.0, "weight of the MSE between the teacher's and the student's last hidden "
                                   "states (0: off)", minimum=0)
    student_init: str = setting("teacher", "a new student's weights: teacher (every teacher tensor of the same "
                                "name and shape; ALBERT's shared layer carries over whole when the widths match) "
                                "or random", choices=("teacher", "random"))
    eval_batch_size: int = setting(64, "rows per forward pass when evaluating on dev", minimum=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.soft_weight > 1:
            raise UserError(f"soft_weight is a share of the loss between 0 and 1, got {self.soft_weight:g}")


class StudentWithProjection(nn.Module):
    """What the loop trains: the student and, for hidden-state transfer, the map from its width to the teacher's."""

    def __init__(self, student: nn.Module, teacher_width: int | None):
        super().__init__()
        self.student, self.config = student, student.config
        width = student.config.hidden_size
        self.projection = nn.Linear(width, teacher_width) if teacher_width else None

    def tie_weights(self) -> None:
        self.student.tie_weights()


def head_logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """(logits as the model returns them, packed last hidden states, their Unpadding) in one forward pass."""
    albert: AlbertModel = model.albert
    hidden, unpadding = albert.encode(batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"))
    if isinstance(model, AlbertForTokenClassification):
        packed = model.classifier(model.dropout(hidden))
        return (packed if unpadding is None else unpadding.unpack(packed)), hidden, unpadding
    return model.classifier(model.dropout(albert.pool(albert.first_tokens(hidden, unpadding)))), hidden, unpadding


class DistillationTask(FinetuningTask):
    """The fine-tuning task with the teacher's targets in the loss; evaluation and saving see the student only."""

    def __init__(self, *args: Any, teacher: nn.Module, teacher_dir: str | Path, options: DistillSettings,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.teacher, self.teacher_dir = teacher.eval().requires_grad_(False), teacher_dir
        self.options = options

    def loss(self, model: StudentWithProjection, batch: dict[str, torch.Tensor], num_items: Any) -> AlbertOutput:
        if next(self.teacher.parameters()).device != batch["input_ids"].device:
            self.teacher.to(batch["input_ids"].device)
        with torch.no_grad():
            teacher_logits, teacher_hidden, _ = head_logits(self.teacher, batch)
        logits, hidden, unpadding = head_logits(model.student, batch)
        labels = batch["labels"]
        if get_task(self.spec.task).outputs == "token_classes":  # per token: real tokens for soft targets, labelled first pieces for hard
            real = batch["attention_mask"].bool()
            logits, teacher_logits, labels = logits[real], teacher_logits[real], labels[real]
        o = self.options
        soft, hard = self._soft(logits, teacher_logits), self._hard(logits, labels)
        loss = o.soft_weight * soft + (1 - o.soft_weight) * hard
        if model.projection is not None and o.hidden_weight > 0:
            loss = loss + o.hidden_weight * F.mse_loss(model.projection(hidden), teacher_hidden)
        return AlbertOutput(loss=loss, logits=logits)

    def _soft(self, logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        if get_task(self.spec.task).outputs == "value":
            return F.mse_loss(logits, teacher_logits)
        t = self.options.temperature
        return F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher_logits / t, -1), log_target=True,
                        reduction="batchmean") * t * t

    def _hard(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The labels' loss over the labelled rows (unlabeled ones: IGNORE_INDEX, or NaN for regression)."""
        if get_task(self.spec.task).outputs == "value":
            values, known = labels.to(logits.dtype).reshape(-1), ~torch.isnan(labels.to(logits.dtype).reshape(-1))
            return F.mse_loss(logits.reshape(-1)[known], values[known]) if bool(known.any()) else logits.sum() * 0
        labels = labels.reshape(-1)
        if not bool((labels != IGNORE_INDEX).any()):
            return logits.sum() * 0
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels, ignore_index=IGNORE_INDEX)

    def evaluate(self, model: StudentWithProjection) -> dict[str, Any]:
        return super().evaluate(model.student)

    def save_model(self, model: StudentWithProjection, directory: Path, summary: dict[str, Any]) -> None:
        write_model_folder(model.student, directory, self.tokenizer,
                           {"task": self.spec.task, "task_spec": self.spec.to_dict(), "summary": summary,
                            "distilled_from": str(self.teacher_dir)})


def student_config(teacher_config: AlbertConfig, preset: str | None, shape: dict[str, int]) -> AlbertConfig:
    """The teacher's config (vocabulary, labels, activation, positions) in the shape of `preset` and `shape`."""
    if preset is not None and preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    fields = {**teacher_config.to_dict(), **(PRESETS[preset] if preset else {}), **shape}
    fields.pop("pruned_heads", None)
    fields.update(num_hidden_groups=1, inner_group_num=1, architectures=None)
    return AlbertConfig.from_dict(fields)


def build_student(teacher: nn.Module, student_dir: str | Path | None, preset: str | None, shape: dict[str, int],
                  init: str) -> nn.Module:
    """A student with the teacher's head: from `student_dir`'s encoder, or a new shape initialised from the
    teacher's same-shaped tensors (`init="teacher"`) or at random; refused when larger than the teacher."""
    cls = type(teacher)
    if student_dir is not None:
        if preset or shape:
            raise UserError("give the student as --student DIR or as a shape (--student-preset, --hidden-size, ...), "
                            "not both")
        head = {k: getattr(teacher.config, k) for k in ("id2label", "problem_type")}
        student = cls.from_pretrained(student_dir, **head)
        if student.config.vocab_size != teacher.config.vocab_size:
            raise UserError(f"the student's vocabulary ({student.config.vocab_size}) differs from the teacher's "
                            f"({teacher.config.vocab_size}): it must read the teacher's tokens", student_dir)
    else:
        student = cls(student_config(teacher.config, preset, shape))
        if init == "teacher":
            mine = student.state_dict()
            shared = {k: v for k, v in teacher.state_dict().items() if k in mine and mine[k].shape == v.shape}
            student.load_state_dict(shared, strict=False)
            student.tie_weights()
    if student.num_parameters() > teacher.num_parameters():
        raise UserError(f"the student ({student.num_parameters():,} parameters) is larger than its teacher "
                        f"({teacher.num_parameters():,}): choose a smaller shape")
    return student


def unlabeled_features(spec: TaskSpec, tokenizer: Any, path: str | Path) -> list[dict[str, Any]]:
    """Features of a file of unlabeled texts in the task's format, with labels that the hard loss skips."""
    if get_task(spec.task).outputs == "token_classes":
        raise UserError("--unlabeled suits classification, pair and regression files; NER needs tags to align")
    with reporting_skipped_rows():
        examples = read_examples(spec, path, require_labels=False)
    if not examples:
        raise UserError("no unlabeled examples", path)
    features = featurize(spec, tokenizer, examples)
    for feature in features:
        feature["labels"] = math.nan if get_task(spec.task).outputs == "value" else IGNORE_INDEX
    return features


def run_distillation(teacher_dir: str | Path, train_path: str | Path, dev_path: str | Path, out_dir: str | Path, *,
                     student_dir: str | Path | None = None, student_preset: str | None = None,
                     shape: dict[str, int] | None = None, unlabeled_path: str | Path | None = None,
                     config_path: str | Path | None = None, resume: bool = False, **settings: Any) -> TrainResult:
    """`albertkit distill`: train a student on the teacher's task into OUT (best on dev in OUT/best)."""
    options = load_settings(DistillSettings, config_path, settings)
    teacher, tokenizer, spec = load_finetuned(teacher_dir)
    distillable = [name for name in TASK_NAMES if get_task(name).outputs in DISTILLABLE_OUTPUTS]
    if spec.task not in distillable:
        raise UserError(f"distillation supports {', '.join(distillable)} teachers, not {spec.task}", teacher_dir)
    torch.manual_seed(options.seed)
    student = build_student(teacher, student_dir, student_preset, shape or {}, options.student_init)
    with reporting_skipped_rows():
        train_examples = read_examples(spec, train_path, require_labels=True)
        dev_examples = read_examples(spec, dev_path, require_labels=True)
    if not train_examples or not dev_examples:
        raise UserError("no training examples" if not train_examples else "no dev examples",
                        train_path if not train_examples else dev_path)
    train_features = featurize(spec, tokenizer, train_examples)
    if unlabeled_path is not None:
        train_features += unlabeled_features(spec, tokenizer, unlabeled_path)
    wrapped = StudentWithProjection(student, teacher.config.hidden_size if options.hidden_weight > 0 else None)
    task = DistillationTask(spec, tokenizer, train_features, dev_examples, featurize(spec, tokenizer, dev_examples),
                            options.seed, options.eval_batch_size, teacher=teacher, teacher_dir=teacher_dir,
                            options=options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_settings(out_dir, options, "distill", {"teacher": teacher_dir, "student": student_dir, "train": train_path,
                                                "dev": dev_path, "unlabeled": unlabeled_path}, resume)
    info = {"task": spec.task, "teacher": str(teacher_dir), "teacher_parameters": teacher.num_parameters(),
            "student_parameters": student.num_parameters(), "train_examples": len(train_features),
            "dev_examples": len(dev_examples), "student_shape": {k: getattr(student.config, k) for k in SHAPE_FIELDS}}
    return train(wrapped, task, options, out_dir, resume=resume, run_info=info)
