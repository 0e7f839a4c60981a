"""ragsc.datasets.heldout: WordNet's example sentences, read from its data files."""

import pytest

from ragsc.datasets.heldout import wordnet_examples
from ragsc.errors import InputError

DATA = "\n".join([
    '  1 This software and database is being provided to you, the LICENSEE, by "Princeton University"',
    '00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived; '
    '"the entity was seen by  many"; "a short one"',
    '00002137 03 n 02 abstraction 0 abstract_entity 0 | a general concept; '
    '"abstraction is a process of the mind"',
]) + "\n"
VERBS = ('00001740 29 v 04 breathe 0 | draw air into, and expel out of, the lungs; '
         '"I can breathe better when the air is clean"; "the entity was seen by many"\n')


def test_examples_are_the_quoted_sentences_deduplicated_and_sampled(tmp_path):
    (tmp_path / "data.noun").write_text(DATA)
    (tmp_path / "data.verb").write_text(VERBS)
    every = wordnet_examples(folder=tmp_path, min_words=1)
    assert every == ["the entity was seen by many", "a short one", "abstraction is a process of the mind",
                     "I can breathe better when the air is clean"]  # licence line skipped, spaces normalised
    assert wordnet_examples(folder=tmp_path) == [s for s in every if len(s.split()) >= 4]
    assert wordnet_examples(2, seed=1, folder=tmp_path) == wordnet_examples(2, seed=1, folder=tmp_path)
    assert len(set(wordnet_examples(3, seed=0, folder=tmp_path))) == 3
    with pytest.raises(InputError, match="asked for 9"):
        wordnet_examples(9, folder=tmp_path)


def test_missing_wordnet_says_how_to_install(tmp_path):
    with pytest.raises(InputError, match="apt-get install wordnet-base"):
        wordnet_examples(folder=tmp_path / "none")
