import torch

from tcig.evaluation.metrics import (
    class_iou,
    confusion_matrix,
    frechet_distance,
    kernel_inception_distance,
    mean_iou,
    pixel_accuracy,
    retrieval_accuracy,
)


def test_iou_of_a_known_case():
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, -1]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 2]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.sum() == 7  # the don't-care pixel is skipped
    iou = class_iou(cm)
    assert torch.allclose(iou[:2], torch.tensor([3 / 4, 3 / 4], dtype=torch.float64))
    assert torch.isnan(iou[2])  # class 2 is predicted only on the ignored pixel
    assert abs(mean_iou(cm) - 0.75) < 1e-9
    assert abs(pixel_accuracy(cm) - 6 / 7) < 1e-9


def test_retrieval_accuracy():
    e = torch.eye(4)
    assert retrieval_accuracy(e, e) == 1.0
    assert retrieval_accuracy(e, e.roll(1, 0)) == 0.0
    assert retrieval_accuracy(e, e.roll(1, 0), k=4) == 1.0


def test_kid_and_fid_separate_distributions():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    shifted = torch.randn(400, 8, generator=g) + 1.0
    same, _ = kernel_inception_distance(a, b, generator=g)
    far, _ = kernel_inception_distance(a, shifted, generator=g)
    assert abs(same) < 0.05 < far
    assert frechet_distance(a, b) < 0.5 < frechet_distance(a, shifted)


class _Oracle:
    """A 'segmenter' that reads the class from the red channel: class k where red == k/10."""

    labels = ["sky", "sea", "boat"]

    def __call__(self, images, queries=None):
        k = (images[:, 0] * 10).round().long().clamp(0, 2)
        return torch.nn.functional.one_hot(k, 3).permute(0, 3, 1, 2).float() * 10


def test_layout_scores_match_labels_by_name():
    from tcig.evaluation.metrics import layout_scores
    from tcig.layout import Layout

    layout = Layout(torch.tensor([[1, 1], [0, 2]]), ["ocean", "sky-other", "rock"])  # names that need matching
    perfect = torch.zeros(1, 3, 2, 2)
    perfect[0, 0] = torch.tensor([[0.0, 0.0], [0.1, 0.0]])  # sky, sky / sea, (rock: not scored)
    scores = layout_scores(_Oracle(), perfect, layout)
    assert scores["miou"] == 1.0 and set(scores["class_iou"]) == {"ocean", "sky-other"}
    wrong = perfect.clone()
    wrong[0, 0, 1, 0] = 0.2  # the sea pixel is read as a boat
    assert layout_scores(_Oracle(), wrong, layout)["miou"] < 1.0
