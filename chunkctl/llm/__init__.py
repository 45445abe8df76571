"""The LLM layer: one protocol (``complete(Request) -> Completion``), two backends (``local``, an
embedded model; ``openai``, any OpenAI-compatible server), and one helper (``LLM``) that adds the
cache, concurrency, a token budget and accounting. See ``types`` for what a request can ask."""
from chunkctl.llm.client import LLM, LLMSettings, LLMStats, open_llm
from chunkctl.llm.types import (BudgetExhausted, Completion, LLMError, Message, Request, SchemaError, TokenLogprob,
                                chat)

__all__ = ["LLM", "LLMSettings", "LLMStats", "open_llm", "BudgetExhausted", "Completion", "LLMError", "Message",
           "Request", "SchemaError", "TokenLogprob", "chat"]
