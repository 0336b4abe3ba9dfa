"""Export against the PaddleOCR training config a user will fine-tune with: its dictionary and
text length, so the trainer drops nothing. The configs below follow PaddleOCR's own layout
(configs/rec/SVTRv2/rec_svtrv2_ch.yml: YAML anchors, MultiLabelEncode with an NRTR head)."""

from __future__ import annotations

import textwrap

import pytest

from svtr_label.store import Store
from svtr_label.dataset.trainconfig import read_train_config
from svtr_label.errors import TrainConfigError
from svtr_label.dataset.validate import text_issues

from test_export import export, read_list

SVTRV2_CONFIG = textwrap.dedent(
    """
    Global:
      model_name: ch_SVTRv2_rec
      character_dict_path: &character_dict_path ppocr/utils/ppocr_keys_v1.txt
      max_text_length: &max_text_length 25
      use_space_char: &use_space_char true
    Architecture:
      model_type: rec
      algorithm: SVTR_HGNet
      Head:
        name: MultiHead
        head_list:
          - CTCHead: {}
          - NRTRHead: {max_text_length: *max_text_length}
    Train:
      dataset:
        name: MultiScaleDataSet
        transforms:
          - DecodeImage: {img_mode: BGR, channel_first: false}
          - MultiLabelEncode: {gtc_encode: NRTRLabelEncode}
          - KeepKeys: {keep_keys: [image, label_ctc, label_gtc, length, valid_ratio]}
    """
)

CTC_CONFIG = textwrap.dedent(
    """
    Global:
      character_dict_path: ppocr/utils/ppocr_keys_v1.txt
      max_text_length: 25
      use_space_char: false
    Train:
      dataset:
        transforms:
          - DecodeImage: {img_mode: BGR}
          - CTCLabelEncode: null
    """
)


@pytest.fixture()
def checkout(tmp_path, monkeypatch):
    """A PaddleOCR checkout's two files, and a working folder elsewhere (where svtr-label runs)."""
    root = tmp_path / "PaddleOCR"
    (root / "ppocr" / "utils").mkdir(parents=True)
    (root / "configs" / "rec" / "SVTRv2").mkdir(parents=True)
    (root / "ppocr" / "utils" / "ppocr_keys_v1.txt").write_text("a\nb\nc\nd\ne\n中\n", encoding="utf-8")
    (root / "configs" / "rec" / "SVTRv2" / "rec_svtrv2_ch.yml").write_text(SVTRV2_CONFIG, encoding="utf-8")
    (root / "configs" / "rec" / "ctc.yml").write_text(CTC_CONFIG, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return root


def test_nrtr_head_keeps_two_tokens_and_the_dictionary_comes_from_the_checkout(checkout):
    target = read_train_config(checkout / "configs" / "rec" / "SVTRv2" / "rec_svtrv2_ch.yml")
    assert target.max_text_length == 23  # NRTRLabelEncode drops len >= max_text_length - 1
    assert target.dict_bytes == (checkout / "ppocr" / "utils" / "ppocr_keys_v1.txt").read_bytes()
    assert target.characters == ("a", "b", "c", "d", "e", "中", " ")
    rules = target.rules()
    assert not text_issues("a" * 23, rules) and text_issues("a" * 24, rules)[0][0] == "too_long"
    assert target.rules(30).max_text_length == 30  # an explicit --max-text-length wins


def test_ctc_only_config_keeps_its_length_and_no_space_without_use_space_char(checkout):
    target = read_train_config(checkout / "configs" / "rec" / "ctc.yml")
    assert target.max_text_length == 25
    rules = target.rules()
    assert not text_issues("a" * 25, rules)
    # PaddleOCR would silently drop the space from this label: it is reported instead.
    assert [kind for kind, _ in text_issues("a b", rules)] == ["out_of_dict"]


def test_a_config_whose_dictionary_is_not_found_says_where_it_looked(tmp_path):
    config = tmp_path / "lonely.yml"
    config.write_text(SVTRV2_CONFIG, encoding="utf-8")
    with pytest.raises(TrainConfigError) as err:
        read_train_config(config)
    assert "ppocr/utils/ppocr_keys_v1.txt" in str(err.value) and "--dict" in str(err.value)
    config.write_text("Global: {character_dict_path: x.txt}\n", encoding="utf-8")
    with pytest.raises(TrainConfigError, match="max_text_length"):
        read_train_config(config)


def test_export_with_the_training_config(checkout, tmp_path, synth_set, synth_predictions, capsys):
    folder, pages = synth_set
    db = tmp_path / "review.db"
    page = synth_predictions[0]
    with Store(db) as store:
        image_id = store.add_page(page, str(folder / pages[0].name))
        store.set_text(image_id, page.regions[0].id, "abcde" * 4 + "中 a", who="t")  # 23: kept
        store.set_text(image_id, page.regions[1].id, "abcde" * 4 + "中 ab", who="t")  # 24: too long
        for region in page.regions[2:]:
            store.mark_illegible(image_id, region.id, who="t")  # detection-only: not checked
    config = checkout / "configs" / "rec" / "SVTRv2" / "rec_svtrv2_ch.yml"
    out = tmp_path / "rec"
    assert export(db, "--format", "paddlex-rec", "--train-config", config, "--out", out, "--val-fraction", "0", "--on-invalid", "drop") == 0
    assert "at most 23" in capsys.readouterr().err
    assert [text for _, text in read_list(out / "train.txt")] == ["abcde" * 4 + "中 a"]
    assert (out / "dict.txt").read_bytes() == (checkout / "ppocr" / "utils" / "ppocr_keys_v1.txt").read_bytes()
