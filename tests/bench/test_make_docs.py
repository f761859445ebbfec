"""docs/benchmarks.md is generated from bench/results: it must be what the result files give."""

import make_docs


def test_benchmarks_doc_is_up_to_date_with_the_result_files():
    assert make_docs.main(["--check"]) == 0, "run: .venv/bin/python bench/make_docs.py"


def test_every_section_names_its_script():
    text = make_docs.render()
    for section in text.split("\n## ")[1:]:
        assert "`bench/" in section, section.splitlines()[0]
