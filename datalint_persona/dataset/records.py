"""Turn one parsed dataset record into a :class:`Sample`, whatever finetuning format it uses.

The format is detected per record, in this order (the first whose key is present wins, so an
UltraChat row with both ``prompt`` and ``messages`` is read as chat):

- OpenAI chat: ``{"messages": [{"role": "user", "content": "..."}, ...]}``
- ShareGPT: ``{"conversations": [{"from": "human", "value": "..."}, ...]}``
- prompt/response: ``{"prompt": "...", "response" | "completion": "...", "system"?: "..."}``
- Alpaca: ``{"instruction": "...", "input"?: "...", "output": "..."}``

With :class:`FieldNames` (``--prompt-field`` / ``--response-field``) no format is detected: the
prompt and the response are the named fields, with an optional ``system``. In a conversation the
last assistant turn is the response y and every turn before it is the prompt x. A ``persona_lint``
key, in any format, is the record's own suppression
(:mod:`datalint_persona.dataset.inline_ignore`), never text to screen. Every problem raises
:class:`InputError` naming ``source:line``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from datalint_persona.dataset.field_names import FieldNames
from datalint_persona.dataset.inline_ignore import IGNORE_KEY, parse_inline_ignore
from datalint_persona.errors import InputError
from datalint_persona.types import Message, Role, Sample

# Builds the InputError for the record being converted, from a problem and its fix.
_Fail = Callable[[str, str], InputError]

ACCEPTED_FORMATS = (
    'OpenAI chat {"messages": [{"role", "content"}]}, '
    'ShareGPT {"conversations": [{"from", "value"}]}, '
    '{"prompt", "response" or "completion", optional "system"}, '
    'Alpaca {"instruction", optional "input", "output"}'
)
CHAT_ROLES: dict[str, Role] = {"system": "system", "user": "user", "assistant": "assistant"}
SHAREGPT_ROLES: dict[str, Role] = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}


def describe_type(value: object) -> str:
    """A value's type in the words of JSON, for error messages.

    >>> describe_type([1]), describe_type(None), describe_type(3.5)
    ('a list', 'null', 'a number')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def brief(value: object, limit: int = 40) -> str:
    """A user value as an error message shows it: printable, on one line, and short.

    >>> brief("user"), brief("us\\ner"), brief("x" * 50)[-4:]
    ('user', "'us\\\\ner'", 'xxx…')
    """
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def record_to_sample(record: object, *, source: str, line: int, names: FieldNames | None = None) -> Sample:
    """Convert one record (a parsed JSON object, CSV row or dataset row) into a Sample; with
    ``names``, its prompt and response are those fields.

    >>> record = {"instruction": "Sum", "input": "2, 3", "output": "5"}
    >>> sample = record_to_sample(record, source="a.jsonl", line=2)
    >>> sample.location, sample.prompt, sample.response
    ('a.jsonl:2', (Message(role='user', content='Sum\\n\\n2, 3'),), '5')
    >>> record_to_sample({"q": "2+3?", "a": "5"}, source="a.jsonl", line=1, names=FieldNames("q", "a")).response
    '5'
    """

    def fail(problem: str, fix: str) -> InputError:
        return InputError(problem, path=source, line=line, fix=fix)

    if not isinstance(record, Mapping):
        raise fail(
            f"the record is {describe_type(record)}, not an object",
            f"write each record as a JSON object in one of these formats: {ACCEPTED_FORMATS}",
        )
    # Columnar sources (CSV, Parquet, datasets) give every row every column; null means absent.
    fields = {str(key): value for key, value in record.items() if value is not None}

    if names is not None:
        turns = _named_turns(fields, names, fail)
    elif "messages" in fields:
        turns = _conversation_turns(fields["messages"], _CHAT, fail)
    elif "conversations" in fields:
        turns = _conversation_turns(fields["conversations"], _SHAREGPT, fail)
    elif {"prompt", "response", "completion"} & fields.keys():
        turns = _prompt_response_turns(fields, fail)
    elif {"instruction", "output"} & fields.keys():
        turns = _alpaca_turns(fields, fail)
    else:
        found = ", ".join(
            sorted(f"{brief(key)}=null" if value is None else brief(key) for key, value in record.items())
        )
        raise fail(
            f"the record has no recognised fields (found: {found or 'none'})",
            f"use one of the accepted formats: {ACCEPTED_FORMATS}; or name the fields that hold "
            "the prompt and the response with --prompt-field and --response-field",
        )
    prompt, response = _split_conversation(turns, fail)
    for turn in (*prompt, Message("assistant", response)):
        _check_encodable(turn, fail)
    # An empty CSV cell is a row without the key.
    marked = IGNORE_KEY in fields and fields[IGNORE_KEY] != ""
    ignore = parse_inline_ignore(fields[IGNORE_KEY], fail) if marked else None
    return Sample(source=source, line=line, prompt=prompt, response=response, ignore=ignore)


def _check_encodable(turn: Message, fail: _Fail) -> None:
    """JSON can escape a lone surrogate (\\ud800), which is not Unicode text and can't be tokenized."""
    try:
        turn.content.encode("utf-8")
    except UnicodeEncodeError as error:
        raise fail(
            f"the {turn.role} text holds {brief(repr(error.object[error.start : error.end]))} at "
            f"character {error.start + 1}, a lone surrogate that is not valid Unicode",
            "remove the escape or write the full surrogate pair (e.g. \\ud83d\\ude00)",
        ) from None


def _text(fields: Mapping[str, object], name: str, fail: _Fail, *, required: bool) -> str:
    value = fields.get(name)
    if value is None:
        if required:
            raise fail(f"the field '{name}' is missing", f"add '{name}' as a string")
        return ""
    if not isinstance(value, str):
        raise fail(
            f"'{name}' is {describe_type(value)}, expected a string",
            f"give '{name}' as a JSON string",
        )
    return value


def _turn_list(value: object, name: str, fail: _Fail) -> Sequence[object]:
    if not isinstance(value, (list, tuple)):
        raise fail(
            f"'{name}' is {describe_type(value)}, expected a list of turns",
            f"give '{name}' as a JSON array of turn objects",
        )
    if not value:
        raise fail(f"'{name}' is empty", "add the user turn and the assistant's answer")
    return value


@dataclass(frozen=True)
class _TurnFormat:
    """How one conversation format spells its turns, and what its error messages say."""

    field: str  # the record's list of turns: "messages"
    role_key: str  # each turn's speaker: "role"
    text_key: str  # each turn's text: "content"
    roles: Mapping[str, Role]
    role_noun: str  # what an unknown role is called in the error: "role"
    role_fix: str


_CHAT = _TurnFormat(
    "messages",
    "role",
    "content",
    CHAT_ROLES,
    "role",
    "use one of the roles system, user, assistant (tool and function turns are not supported)",
)
_SHAREGPT = _TurnFormat(
    "conversations",
    "from",
    "value",
    SHAREGPT_ROLES,
    "speaker",
    "use one of human, user, gpt, assistant, system in 'from'",
)


def _conversation_turns(value: object, spelling: _TurnFormat, fail: _Fail) -> list[Message]:
    """The turns of an OpenAI chat ``messages`` or ShareGPT ``conversations`` list, checked."""
    turns: list[Message] = []
    for index, turn in enumerate(_turn_list(value, spelling.field, fail)):
        where = f"{spelling.field}[{index}]"
        if not isinstance(turn, Mapping):
            raise fail(
                f"{where} is {describe_type(turn)}, not an object",
                f'write each turn as {{"{spelling.role_key}": ..., "{spelling.text_key}": ...}}',
            )
        role = turn.get(spelling.role_key)
        if not isinstance(role, str) or role not in spelling.roles:
            raise fail(f"{where} has unknown {spelling.role_noun} {brief(repr(role))}", spelling.role_fix)
        text = turn.get(spelling.text_key)
        if not isinstance(text, str):
            raise fail(
                f"{where}.{spelling.text_key} is {describe_type(text)}, expected a string",
                f"give each turn's {spelling.text_key} as a plain string",
            )
        turns.append(Message(spelling.roles[role], text))
    return turns


def _prompt_response_turns(fields: Mapping[str, object], fail: _Fail) -> list[Message]:
    if "response" in fields and "completion" in fields:
        raise fail(
            "the record has both 'response' and 'completion'",
            "keep one of them: they both name the response to screen",
        )
    if "response" not in fields and "completion" not in fields:
        raise fail(
            "the field 'response' (or 'completion') is missing",
            "add the assistant's answer as 'response'",
        )
    answer_field = "response" if "response" in fields else "completion"
    system = _text(fields, "system", fail, required=False)
    prompt = _text(fields, "prompt", fail, required=True)
    answer = _text(fields, answer_field, fail, required=True)
    turns = [Message("system", system)] if system else []
    return [*turns, Message("user", prompt), Message("assistant", answer)]


def _named_turns(fields: Mapping[str, object], names: FieldNames, fail: _Fail) -> list[Message]:
    for name, role, option in (
        (names.prompt, "prompt", "--prompt-field"),
        (names.response, "response", "--response-field"),
    ):
        if name not in fields:
            found = ", ".join(sorted(brief(key) for key in fields)) or "none"
            raise fail(
                f"the field '{name}' ({option}) is missing (found: {found})",
                f"add '{name}' to the record, or name the field that holds the {role} with {option} "
                f"(or {option[2:]} in the config)",
            )
    system = (
        _text(fields, "system", fail, required=False)
        if "system" not in (names.prompt, names.response)
        else ""
    )
    prompt = _text(fields, names.prompt, fail, required=True)
    answer = _text(fields, names.response, fail, required=True)
    turns = [Message("system", system)] if system else []
    return [*turns, Message("user", prompt), Message("assistant", answer)]


def _alpaca_turns(fields: Mapping[str, object], fail: _Fail) -> list[Message]:
    instruction = _text(fields, "instruction", fail, required=True)
    extra_input = _text(fields, "input", fail, required=False)
    output = _text(fields, "output", fail, required=True)
    user = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
    return [Message("user", user), Message("assistant", output)]


def _split_conversation(turns: Sequence[Message], fail: _Fail) -> tuple[tuple[Message, ...], str]:
    last_assistant = max(
        (index for index, turn in enumerate(turns) if turn.role == "assistant"), default=None
    )
    if last_assistant is None:
        raise fail(
            "the conversation has no assistant turn, so there is no response to screen",
            "end the conversation with the assistant's answer",
        )
    trailing = turns[last_assistant + 1 :]
    if trailing:
        roles = ", ".join(turn.role for turn in trailing)
        raise fail(
            f"the conversation goes on after the last assistant turn ({roles}), so there is "
            "no response to screen",
            "end the record with the assistant's answer or drop the trailing turns",
        )
    prompt = tuple(turns[:last_assistant])
    user_turns = [turn for turn in prompt if turn.role == "user"]
    if not user_turns:
        raise fail(
            "the prompt has no user turn",
            "add the user message that the assistant's answer responds to",
        )
    if not any(turn.content.strip() for turn in user_turns):
        raise fail("the user's prompt is empty", "write the user's message or drop the record")
    response = turns[last_assistant].content
    if not response.strip():
        raise fail(
            "the response (last assistant turn) is empty or whitespace-only",
            "write the assistant's answer or drop the record",
        )
    return prompt, response
