"""Japanese charset handling: every encoding, with correct, missing and wrong labels."""

import json

import pytest

from shikomi.extract.demo_data import ja_paragraphs
from shikomi.text.charset import decode_html, mojibake_per_1000, normalise_label

ENCODINGS = ["utf-8", "cp932", "shift_jis", "euc_jp", "iso2022_jp"]
LABELS = {
    "utf-8": "UTF-8",
    "cp932": "Windows-31J",
    "shift_jis": "Shift_JIS",
    "euc_jp": "EUC-JP",
    "iso2022_jp": "ISO-2022-JP",
}
WRONG = {
    "utf-8": "Shift_JIS",
    "cp932": "EUC-JP",
    "shift_jis": "ISO-8859-1",
    "euc_jp": "Shift_JIS",
    "iso2022_jp": "UTF-8",
}


def _html(text: str, meta: str | None) -> str:
    m = f'<meta http-equiv="Content-Type" content="text/html; charset={meta}">' if meta else ""
    return f"<html><head>{m}<title>t</title></head><body><p>{text}</p></body></html>"


@pytest.mark.parametrize("enc", ENCODINGS)
@pytest.mark.parametrize("label", ["correct", "missing", "wrong", "wrong_meta_only"])
def test_japanese_decodes_exactly(enc, label):
    text = "\n".join(ja_paragraphs()[:4])
    if label == "wrong_meta_only":
        html, http = _html(text, WRONG[enc]), None
    else:
        html = _html(text, None)
        http = {"correct": LABELS[enc], "missing": None, "wrong": WRONG[enc]}[label]
    dec = decode_html(html.encode(enc), http)
    assert text in dec.text
    assert mojibake_per_1000(dec.text) == 0


def test_chinese_and_cyrillic_keep_their_declared_charset():
    zh = "中华人民共和国是世界上人口最多的国家之一，首都是北京。" * 3
    dec = decode_html(_html(zh, None).encode("gb2312"), "gb2312")
    assert zh in dec.text and dec.charset == "gb18030"
    ru = "Москва является столицей Российской Федерации." * 3
    dec = decode_html(_html(ru, None).encode("cp1251"), "windows-1251")
    assert ru in dec.text


def test_labels_normalise():
    assert normalise_label("Shift_JIS") == "cp932"
    assert normalise_label("x-sjis") == "cp932"
    assert normalise_label("EUC-JP") == "euc_jp"
    assert normalise_label("no-such-charset") is None


@pytest.mark.realdata
def test_real_japanese_text_all_encodings(shared_data):
    leads = [
        json.loads(line)["text"]
        for line in open(shared_data / "ja" / "jawiki_annotated_corpus_leads.jsonl", encoding="utf-8")
    ]
    bad = 0
    checked = 0
    for _i, t in enumerate(leads[:300]):
        for enc in ENCODINGS:
            try:
                raw = _html(t, None).encode(enc)
            except UnicodeEncodeError:
                continue  # characters outside that legacy charset
            for http in (LABELS[enc], None, WRONG[enc]):
                dec = decode_html(raw, http)
                checked += 1
                if t not in dec.text or "\ufffd" in dec.text:
                    bad += 1
    assert checked > 3000
    assert bad == 0, f"{bad}/{checked} decodings lost text"


@pytest.mark.realdata
def test_udhr_japanese_files(shared_data):
    """The UDHR in Japanese in four real encodings, decoded without any label."""
    import zipfile

    with zipfile.ZipFile(shared_data / "gold" / "langid" / "nltk_udhr.zip") as z:
        names = [n for n in z.namelist() if "Japanese" in n]
        assert names
        texts = {n: z.read(n) for n in names}
    utf8 = [v for n, v in texts.items() if "UTF8" in n]
    assert utf8
    ref = utf8[0].decode("utf-8-sig")
    for n, raw in texts.items():
        dec = decode_html(raw, None)
        assert "\ufffd" not in dec.text, n
        assert dec.text.replace("\r\n", "\n")[:200] == ref.replace("\r\n", "\n")[:200], n
