"""Meta-Chunking's perplexity chunking: the spec's worked examples for the boundary rule, the
dynamic threshold, windowed scoring equal to one pass, the fallback when the LLM cannot score, and
the real embedded model on a two-topic text."""
from __future__ import annotations

from chunkctl.chunkers import ChunkContext, chunk_document, parse_spec
from chunkctl.chunkers.ppl import find_minima, sentence_scores, windows
from chunkctl.llm import LLM, Completion, TokenLogprob
from chunkctl.types import Document


def test_find_minima_worked_examples():
    v = [5, 3, 5, 4, 4, 6]
    assert find_minima(v, 1) == [1, 3]  # 1: drops 2/2; 3: the plateau, left drop 1
    assert find_minima(v, 2) == [1]
    assert find_minima([5, 4, 6], 1.5, rule="and") == []  # left drop 1 < 1.5
    assert find_minima([5, 4, 6], 1.5, rule="or") == [1]  # right drop 2
    assert find_minima([], 0) == [] and find_minima([3.0], 0) == []
    assert find_minima([5, None, 5, 3, 5], 0) == [3]  # an unscored sentence is never a minimum


def test_dynamic_threshold_takes_the_smallest_drop_after_100():
    v = []
    for i in range(101):
        v += [9.0, 9.0 - (1 + i * 0.01)]  # minima with drops 1.00, 1.01, ...
    v += [9.0, 8.5, 9.0]  # a drop of 0.5: below θ = 0 ... accepted with the static θ = 0
    assert len(find_minima(v, 0.0)) == 102
    assert len(find_minima(v, 0.0, dynamic=True)) == 101  # θ became 1.0 after 100 minima


def test_sentence_scores_and_windows():
    assert sentence_scores([(0, 1.0), (3, 3.0), (5, 2.0), (12, 4.0)], [0, 5, 10, 20]) == [2.0, 2.0, 4.0, None]
    bounds = [(0, 10), (10, 20), (20, 25), (25, 60), (60, 70)]
    assert windows(bounds, 20) == [(0, 2), (2, 3), (3, 4), (4, 5)]


class RuleScorer:
    """The spec's RuleTokenScorer over words (an arithmetic test): 3 nats, 1 when the word already
    appeared in the context or earlier in the text."""

    name, model_id, where = "rule", "rule", "-"

    def __init__(self):
        self.calls = 0

    def complete(self, req):
        import re

        self.calls += 1
        seen = {w.lower() for w in re.findall(r"\w+", req.prompt)}
        toks = []
        for m in re.finditer(r"\w+", req.score):
            w = m.group().lower()
            toks.append(TokenLogprob(m.group(), -1.0 if w in seen else -3.0, m.start()))
            seen.add(w)
        return Completion(logprobs=tuple(toks))


TEXT = ("Seeds rest in cold rooms. Cold rooms keep seeds alive. Seeds stay alive for decades. "
        "Bonds pay interest. Interest rates rose this year. Rates fell again later.")


def _ctx(scorer):
    ctx = ChunkContext(device="cpu")
    ctx._llm = LLM(scorer)
    return ctx


def test_windowed_scoring_equals_one_pass_when_the_context_covers_the_text():
    doc = Document("d", "d.txt", "x", "text/plain", TEXT)
    one = chunk_document(doc, parse_spec("ppl:stride=100000,size=512"), _ctx(RuleScorer()))
    scorer = RuleScorer()
    many = chunk_document(doc, parse_spec("ppl:stride=30,context=100000,size=512"), _ctx(scorer))
    assert scorer.calls > 3 and [(c.char_start, c.char_end) for c in many] == [(c.char_start, c.char_end) for c in one]
    assert len(one) >= 2 and all(TEXT[c.char_start:c.char_end] == c.text for c in one)


def test_unscored_windows_fall_back_and_say_so():
    from chunkctl.llm import LLMError

    class Down:
        name, model_id, where = "down", "down", "-"

        def complete(self, req):
            raise LLMError("server down")

    doc = Document("d", "d.txt", "x", "text/plain", TEXT)
    chunks = chunk_document(doc, parse_spec("ppl:size=12"), _ctx(Down()))
    assert len(chunks) > 1 and all(c.metadata.get("ppl_unscored") for c in chunks)
    assert all(TEXT[c.char_start:c.char_end] == c.text and c.n_tokens <= 12 for c in chunks)


def test_real_model_on_two_topics():
    """SmolLM2-135M through the LLM layer: the first sentence of the new topic is the surprising one,
    and the chunks end at the local minima of the sentence scores (the model's judgement of where a
    topic ends is its own: with 135M parameters the minimum falls one sentence early here)."""
    from chunkctl.chunkers.sentence import sentence_bounds
    from chunkctl.llm import Request

    text = ("The seed library lends tomato and bean seeds to its members every spring. Members plant the "
            "seeds, let a few plants go to seed, and bring new seeds back in the autumn. Volunteers dry "
            "and sort the returned seeds before they are stored.\n\nThe central bank raised interest "
            "rates by half a point on Tuesday. Bond yields rose after the announcement, and the currency "
            "gained against the dollar. Analysts expect a further rise before the end of the year.")
    doc = Document("d", "d.txt", "x", "text/plain", text)
    ctx = ChunkContext(device="cpu")
    chunks = chunk_document(doc, parse_spec("ppl"), ctx)
    assert len(chunks) >= 2 and all(text[c.char_start:c.char_end] == c.text for c in chunks)
    bounds = sentence_bounds(text)
    out = ctx.llm.complete(Request(prompt="", score=text))
    scores = sentence_scores([(t.start, -t.logprob) for t in out.logprobs], [s for s, _ in bounds])
    new_topic = next(i for i, (s, _) in enumerate(bounds) if text[s:].startswith("The central bank"))
    assert scores[new_topic] > scores[new_topic - 1] + 1  # the shift surprises the model
    minima_ends = {len(text[:bounds[i][1]].rstrip()) for i in find_minima(scores, 0.0)}
    assert {c.char_end for c in chunks[:-1]} == minima_ends  # each chunk but the last ends at a minimum
    assert ctx.llm_stats.calls >= 1
