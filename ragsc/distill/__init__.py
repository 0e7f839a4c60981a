"""Knowledge distillation: compact transmitters from large models.

* :mod:`~ragsc.distill.store`: the teacher's outputs computed once over a dataset (safetensors shards,
  resumable, keyed by content hash, refused for another teacher or recipe);
* :mod:`~ragsc.distill.losses`: KD to the teacher's embedding, soft KD, the information-bottleneck loss;
* :mod:`~ragsc.distill.students`: compact image / text towers that load as encoders of their
  teacher's space (``load_encoder("student:<dir>")``);
* :mod:`~ragsc.distill.train`: stage 1, a student learns from the store (KD, IB, or from scratch);
* :mod:`~ragsc.distill.darts`: KDL-DARTS, the architecture search with a KD loss and a complexity penalty.
* :mod:`~ragsc.distill.runs`: KDL-DARTS on a teacher store, saved as a student (``ragsc distill search``),
  and a student scored against its teacher on a held-out store (``ragsc distill eval``).
"""

from ragsc.distill.losses import BottleneckConfig, BottleneckHead, ib_kd_loss, kd_loss, soft_kd_loss
from ragsc.distill.store import DataRecipe, TeacherStore, build_store
from ragsc.distill.student_nets import ImageStudentConfig, TextStudentConfig
from ragsc.distill.students import StudentConfig, StudentEncoder, save_student
from ragsc.distill.train import distill_to_folder, evaluate_student, train_student

__all__ = [
    "BottleneckConfig",
    "BottleneckHead",
    "DataRecipe",
    "ImageStudentConfig",
    "StudentConfig",
    "StudentEncoder",
    "TeacherStore",
    "TextStudentConfig",
    "build_store",
    "distill_to_folder",
    "evaluate_student",
    "ib_kd_loss",
    "kd_loss",
    "save_student",
    "soft_kd_loss",
    "train_student",
]
