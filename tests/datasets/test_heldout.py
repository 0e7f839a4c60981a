"""ragsc.datasets.heldout: WordNet's example sentences and gloss -> example pairs, from its data files."""

import pytest

from ragsc.datasets.heldout import WORDNET_DIR, GlossPair, wordnet_examples, wordnet_gloss_pairs
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


# one synset per line: the pairs a loader may build are known by synset id
GLOSSES = "\n".join([
    '  1 This software and database is being provided to you, the LICENSEE, by "Princeton University"',
    '00000001 03 n 01 cat 0 000 | a small domesticated feline; "the cat slept  on the warm mat all day"',
    '00000002 03 n 01 dog 0 000 | a loyal canine; "too short"; "the dog fetched the stick from the lake"',
    '00000003 03 n 01 boat 0 000 | a small vessel for travel on water',  # no example
    '00000004 03 n 01 echo 0 000 | say it again and again; "say it again and again"; "he said it again '
    'and again to the crowd"',  # the first example equals the gloss: the second is taken
    '00000005 03 n 01 quote 0 000 | (often followed by "of") a part of; "a part of the whole thing here"',
    '00000006 03 n 01 kitten 0 000 | a small domesticated feline; "a kitten played with the red ball"',
    '00000007 03 n 01 pup 0 000 | a young dog; "the dog fetched the stick from the lake"',
    '00000008 03 n 01 fast 0 000 | quick money, "they are traders out to make a fast buck"',
]) + "\n"
MORE = "".join(f'{10 + i:08d} 29 v 01 w{i} 0 | to do thing number {i}; "people often do thing number {i} '
               f'at home"\n' for i in range(40))


def test_gloss_pairs_keep_a_synsets_definition_with_its_own_example(tmp_path):
    (tmp_path / "data.noun").write_text(GLOSSES)
    pairs = wordnet_gloss_pairs(folder=tmp_path)
    assert pairs == [
        GlossPair("00000001-n", "a small domesticated feline", "the cat slept on the warm mat all day"),
        GlossPair("00000002-n", "a loyal canine", "the dog fetched the stick from the lake"),
        GlossPair("00000004-n", "say it again and again", "he said it again and again to the crowd"),
    ]  # no example (boat), a quote in the definition, a repeated gloss or example, a comma: skipped
    assert all(p.example.casefold() != p.gloss.casefold() for p in pairs)
    assert [p.example for p in wordnet_gloss_pairs(folder=tmp_path, min_words=1)][1] == "too short"


def test_gloss_pairs_are_a_seeded_sample_of_n(tmp_path):
    (tmp_path / "data.verb").write_text(MORE)
    every = wordnet_gloss_pairs(folder=tmp_path)
    assert len(every) == 40 and all(p.example == f"people often do thing number {p.gloss.split()[-1]} at home"
                                    and p.synset == f"{10 + int(p.gloss.split()[-1]):08d}-v" for p in every)
    a, b = wordnet_gloss_pairs(10, seed=3, folder=tmp_path), wordnet_gloss_pairs(10, seed=3, folder=tmp_path)
    assert a == b and len(a) == 10 and len(set(a)) == 10 and set(a) <= set(every)
    assert a != wordnet_gloss_pairs(10, seed=4, folder=tmp_path)
    with pytest.raises(InputError, match="asked for 41 WordNet gloss pairs, 40 have"):
        wordnet_gloss_pairs(41, folder=tmp_path)
    with pytest.raises(InputError, match="asked for 0"):
        wordnet_gloss_pairs(0, folder=tmp_path)


@pytest.mark.skipif(not (WORDNET_DIR / "data.noun").is_file(), reason="Debian's wordnet-base not installed")
def test_real_gloss_pairs_come_from_one_synset_each():
    pairs = wordnet_gloss_pairs(300, seed=0)
    assert len({p.gloss for p in pairs}) == len({p.example for p in pairs}) == 300
    files = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
    for p in pairs:
        offset, kind = p.synset.split("-")
        with open(WORDNET_DIR / f"data.{files[kind]}", "rb") as f:  # a synset's id is its byte offset
            f.seek(int(offset))
            line = " ".join(f.readline().decode("utf-8", "replace").split())
        assert line.startswith(f"{offset} ") and f"| {p.gloss}; " in line and f'"{p.example}"' in line
        assert p.example.casefold() != p.gloss.casefold() and 4 <= len(p.example.split()) <= 30


def test_gloss_pairs_without_wordnet_say_how_to_install(tmp_path):
    with pytest.raises(InputError, match="apt-get install wordnet-base"):
        wordnet_gloss_pairs(5, folder=tmp_path / "none")
