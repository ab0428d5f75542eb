"""Token ids of the question prompts and of the probe suffix.

The collector builds prompts itself (chat template applied locally, then tokenised) and
sends token ids, so the offline and the server backends see exactly the same prompts and
a prefix shared by two requests is shared token for token (which the prefix cache needs).
"""

from __future__ import annotations

from typing import Any

from collection.config import CollectConfig
from collection.questions import Question


def load_tokenizer(config: CollectConfig) -> Any:
    """The Hugging Face tokenizer of ``config.tokenizer`` (default: the model)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(config.tokenizer or config.model)


class PromptBuilder:
    """Turns questions into prompt token ids and decodes generated ids.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template (or ``config.chat_template``).
        config: the run's settings (prompt template, system prompt, probe suffix).
    """

    def __init__(self, tokenizer: Any, config: CollectConfig) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.chat_template = config.chat_template_text() or getattr(tokenizer, "chat_template", None)
        if not self.chat_template:
            raise ValueError(
                f"tokenizer {config.tokenizer or config.model} has no chat template; give one with --chat-template FILE"
            )
        self.probe_suffix = tuple(self.encode(config.probe_suffix))
        if not self.probe_suffix:
            raise ValueError("setting 'probe_suffix' tokenises to nothing")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens added."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int] | tuple[int, ...]) -> str:
        """Text of generated ids (special tokens dropped)."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def prompt_text(self, question: Question) -> str:
        """The question rendered through the chat template, ready for generation."""
        messages = []
        if self.config.system_prompt:
            messages.append({"role": "system", "content": self.config.system_prompt})
        messages.append({"role": "user", "content": self.config.prompt_template.replace("{question}", question.text)})
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )

    def prompt_ids(self, question: Question) -> tuple[int, ...]:
        """Prompt token ids of one question."""
        return tuple(self.encode(self.prompt_text(question)))
