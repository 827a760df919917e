from __future__ import annotations

import hashlib
import json

from rag_assets.feedback.finetune import (
    FinetuneConfig,
    build_finetune_dataset,
    is_well_rated,
)
from rag_assets.feedback.pii import PiiMasker


def turn(make_event, number: int, **overrides):
    values = dict(
        conversation_id=f"conv-{number}",
        turn_id="1",
        offset=number,
        question=f"Question {number}: can I take {number} bags to Lisbon?",
        answer=f"Answer {number}: yes, {number} bags of 23 kg each are included on this fare.",
        rating_up=True,
        rating_score=None,
    )
    values.update(overrides)
    return make_event(**values)


def test_example_is_chat_formatted_and_masked(make_event):
    event = turn(
        make_event,
        1,
        question="I'm Sally Thomas, sally@example.com — can I move my flight?",
        answer="Yes Sally, call +44 20 7946 0958 or use Manage Booking.",
    )

    dataset = build_finetune_dataset([event], masker=PiiMasker(["Sally", "Thomas"]))

    assert dataset.examples == (
        {
            "messages": [
                {"role": "system", "content": FinetuneConfig().system_prompt},
                {
                    "role": "user",
                    "content": "I'm [NAME] [NAME], [EMAIL] — can I move my flight?",
                },
                {
                    "role": "assistant",
                    "content": "Yes [NAME], call [PHONE] or use Manage Booking.",
                },
            ]
        },
    )


def test_selection_rule_and_filter_reasons(make_event):
    events = [
        turn(make_event, 0),  # thumbs up: kept
        turn(make_event, 1, rating_up=True, rating_score=5.0),  # score 5: kept
        turn(make_event, 2, rating_up=True, rating_score=4.0),  # score 4: kept
        turn(make_event, 3, rating_up=None, rating_score=3.0),
        turn(make_event, 4, rating_up=False),
        turn(make_event, 5, rating_up=None),
        turn(make_event, 6, customer_ref="erased-1"),
        turn(make_event, 7),  # flagged below
        turn(make_event, 8, answer="   "),
        turn(make_event, 9, question=""),
        turn(make_event, 10, conversation_id="conv-0"),  # redelivery of turn 0 at a later offset
        turn(make_event, 11, customer_ref=None),  # anonymous: kept
    ]

    dataset = build_finetune_dataset(
        events, erased_customers={"erased-1"}, flagged_turns={("conv-7", "1")}
    )

    kept_questions = [example["messages"][1]["content"] for example in dataset.examples]
    assert [q.split(":")[0] for q in kept_questions] == [
        "Question 0",
        "Question 1",
        "Question 2",
        "Question 11",
    ]
    assert dataset.manifest["records_in"] == 12
    assert dataset.manifest["records_out"] == 4
    assert dataset.manifest["filtered"] == {
        "duplicate_turn": 1,
        "erased_customer": 1,
        "flagged": 1,
        "not_well_rated": 3,
        "empty_question": 1,
        "empty_answer": 1,
        "near_duplicate": 0,
    }


def test_min_score_is_configurable(make_event):
    strict = FinetuneConfig(min_score=5.0)
    assert not is_well_rated(
        turn(make_event, 0, rating_up=True, rating_score=4.0), strict.min_score
    )
    assert is_well_rated(turn(make_event, 0, rating_up=True, rating_score=5.0), strict.min_score)
    assert is_well_rated(turn(make_event, 0, rating_up=True, rating_score=None), strict.min_score)


def test_near_duplicates_are_removed_keeping_the_earliest(make_event):
    question = "Can I bring my dog on board?"
    answer = "Small pets up to 8 kg travel in the cabin in an approved carrier."
    events = [
        turn(make_event, 5, question=question, answer=answer),
        turn(make_event, 2, question=question.upper(), answer=answer.replace(".", "!")),
        turn(
            make_event,
            9,
            question="Where is my refund?",
            answer="Refunds take up to 7 working days.",
        ),
    ]

    dataset = build_finetune_dataset(events)

    assert [example["messages"][1]["content"] for example in dataset.examples] == [
        question.upper(),
        "Where is my refund?",
    ]
    assert dataset.manifest["near_duplicates_removed"] == 1
    assert dataset.manifest["filtered"]["near_duplicate"] == 1


def test_jsonl_and_version_come_from_the_content(make_event):
    events = [turn(make_event, i) for i in range(3)]

    dataset = build_finetune_dataset(events)
    content = dataset.to_jsonl()

    lines = content.decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(dataset.examples)
    assert content.endswith(b"\n")
    digest = hashlib.sha256(content).hexdigest()
    assert dataset.manifest["content_sha256"] == digest
    assert dataset.version == f"ft-{digest[:16]}"


def test_same_events_in_any_order_give_the_same_version(make_event):
    events = [turn(make_event, i) for i in range(6)]
    assert build_finetune_dataset(events).version == build_finetune_dataset(events[::-1]).version
    assert build_finetune_dataset(events).version != build_finetune_dataset(events[:5]).version


def test_manifest_records_source_offsets_and_filters_without_customer_refs(make_event):
    events = [
        turn(make_event, 3),
        turn(make_event, 8),
        turn(make_event, 4, partition=1, customer_ref="erased-9"),
    ]

    manifest = build_finetune_dataset(events, erased_customers={"erased-9"}).manifest

    assert manifest["source_offsets"] == [
        {"topic": "app.feedback", "partition": 0, "first_offset": 3, "last_offset": 8},
        {"topic": "app.feedback", "partition": 1, "first_offset": 4, "last_offset": 4},
    ]
    assert manifest["filters"]["erased_customers"] == 1
    assert manifest["filters"]["near_duplicate"]["threshold"] == 0.8
    assert "erased-9" not in json.dumps(manifest)


def test_unicode_is_written_as_utf8_not_escaped(make_event):
    dataset = build_finetune_dataset([turn(make_event, 1, answer="Oui, à Zürich — 2 bagages 😊")])
    assert "Zürich — 2 bagages 😊".encode() in dataset.to_jsonl()


def test_empty_input_gives_an_empty_dataset(make_event):
    dataset = build_finetune_dataset([])
    assert dataset.examples == () and dataset.to_jsonl() == b""
    assert dataset.manifest["records_in"] == 0 and dataset.manifest["source_offsets"] == []
