"""The record matcher: normalisation, comparisons, blocking keys, the model and its estimation."""

from __future__ import annotations

import datetime
import json
import random
from dataclasses import replace

import pytest

from accord.errors import InputError
from accord.identity import (
    DEFAULT_BLOCKING,
    DEFAULT_COMPARISONS,
    IDENTITY_FIELDS,
    MAX_KEY_LENGTH,
    Blocking,
    BlockingRule,
    Comparison,
    IdentityRecord,
    KeyPart,
    MatchModel,
    candidate_pairs,
    compare,
    default_model,
    estimate,
    evaluate_deduplication,
    normalise,
    soundex,
)


def record(record_id: str = "r", **fields: object) -> IdentityRecord:
    return normalise(fields, source="test", record_id=record_id, default_region="GB")


# Normalisation


def test_aliases_map_onto_canonical_fields() -> None:
    found = record(
        first_name="Ann",
        family_name="Smith",
        dob="1930-02-13",
        address_1="Forbes Street",
        suburb="Kellerberrin",
        zip="4510",
        soc_sec_id="7535316",
        email_address="ann@example.com",
        telephone="020 7946 0958",
    )
    assert dict(found.fields) == {
        "given_name": "ann",
        "surname": "smith",
        "birth_date": "19300213",
        "email": "ann@example.com",
        "phone": "+442079460958",
        "address": "forbes street",
        "locality": "kellerberrin",
        "postcode": "4510",
        "national_id": "7535316",
    }
    assert set(found.fields) <= set(IDENTITY_FIELDS)


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("firstname", "given_name"),
        ("First Name", "given_name"),
        ("firstName", "given_name"),
        ("last_name", "surname"),
        ("dateOfBirth", "birth_date"),
        ("street", "address"),
        ("address_line1", "address"),
        ("city", "locality"),
        ("town", "locality"),
        ("postal_code", "postcode"),
        ("ssn", "national_id"),
        ("mobile", "phone"),
    ],
)
def test_alias_keys(key: str, field: str) -> None:
    value = (
        "20200102" if field == "birth_date" else "+44 20 7946 0958" if field == "phone" else "x1"
    )
    assert field in record(**{key: value}).fields


def test_names_lose_accents_case_and_punctuation() -> None:
    found = record(given_name="  José  Ángel ", surname="O'Brien-SMITH")
    assert found.get("given_name") == "jose angel"
    assert found.get("surname") == "obrien smith"


def test_a_single_name_is_split_unless_parts_are_given() -> None:
    assert dict(record(name="Smith, Ann").fields) == {"given_name": "ann", "surname": "smith"}
    assert dict(record(name="Ann Marie Smith").fields) == {
        "given_name": "ann marie",
        "surname": "smith",
    }
    assert dict(record(name="Ann Smith", surname="Jones").fields) == {"surname": "jones"}


def test_email_is_lowercased_and_non_addresses_are_omitted() -> None:
    assert record(email="  Ann.Smith@Example.COM ").get("email") == "ann.smith@example.com"
    for bad in ("not an email", "ann@", "@example.com", "ann@example", "a b@example.com"):
        assert record(email=bad).get("email") is None


def test_phones_become_e164_and_invalid_ones_are_omitted() -> None:
    assert record(phone="020 7946 0958").get("phone") == "+442079460958"
    assert record(phone="+61 2 9374 4000").get("phone") == "+61293744000"
    assert record(phone="123").get("phone") is None
    assert record(phone="call me").get("phone") is None
    without_region = normalise({"phone": "020 7946 0958"}, source="s", record_id="1")
    assert without_region.get("phone") is None


@pytest.mark.parametrize(
    "value",
    ["19300213", "1930-02-13", "13/02/1930", 19300213, datetime.date(1930, 2, 13)],
)
def test_dates_in_accepted_formats(value: object) -> None:
    assert record(dob=value).get("birth_date") == "19300213"


@pytest.mark.parametrize("value", ["19301302", "31/02/2000", "2000-13-01", "yesterday", "1930"])
def test_impossible_or_unreadable_dates_are_omitted(value: str) -> None:
    assert record(dob=value).get("birth_date") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Forbes St.", "forbes street"),
        ("12 St Kilda Rd", "12 st kilda road"),
        ("Sturdee Cres", "sturdee crescent"),
        ("Oliver Ave", "oliver avenue"),
        ("Macquoid Pl", "macquoid place"),
        ("Milne Ct", "milne court"),
        ("Long Dr", "long drive"),
    ],
)
def test_street_types_are_canonical(raw: str, expected: str) -> None:
    assert record(address=raw).get("address") == expected


def test_postcodes_ids_and_street_numbers() -> None:
    found = record(postcode="sw1a 1aa", national_id="123-45-6789", street_number=" 12A ")
    assert found.get("postcode") == "SW1A1AA"
    assert found.get("national_id") == "123456789"
    assert found.get("street_number") == "12a"


def test_unknown_keys_none_and_empty_values_are_ignored() -> None:
    found = record(favourite_colour="blue", given_name=None, surname="  ", city="")
    assert dict(found.fields) == {}


def test_the_first_valid_value_of_a_field_counts() -> None:
    assert record(phone="123", mobile="020 7946 0958").get("phone") == "+442079460958"


def test_records_are_immutable() -> None:
    found = record(given_name="ann")
    with pytest.raises(TypeError):
        found.fields["given_name"] = "bob"  # type: ignore[index]


# Comparisons

GIVEN, SURNAME, BIRTH, NATIONAL_ID, *_ = DEFAULT_COMPARISONS
ADDRESS = next(c for c in DEFAULT_COMPARISONS if c.field == "address")
STATE = next(c for c in DEFAULT_COMPARISONS if c.field == "state")


def test_a_missing_value_is_no_evidence() -> None:
    assert compare(GIVEN, record(given_name="ann"), record(surname="smith")) is None


def test_equal_values_reach_the_exact_level() -> None:
    assert compare(GIVEN, record(given_name="Ann"), record(given_name="ann")) == GIVEN.exact_level
    assert compare(STATE, record(state="vic"), record(state="vic")) == 1
    assert compare(STATE, record(state="vic"), record(state="nsw")) == 0


def test_names_tolerate_typos_but_not_different_names() -> None:
    level = compare(SURNAME, record(surname="lanyon"), record(surname="lanyln"))
    assert level is not None
    assert 0 < level < SURNAME.exact_level
    assert compare(SURNAME, record(surname="lanyon"), record(surname="bruhn")) == 0
    split = compare(GIVEN, record(given_name="jacob"), record(given_name="jac ob"))
    assert split == GIVEN.exact_level - 1


def test_swapped_names_are_a_strong_partial_agreement() -> None:
    a = record(given_name="petreece", surname="lusted")
    b = record(given_name="lusted", surname="petreece")
    assert compare(GIVEN, a, b) == GIVEN.exact_level - 1
    assert compare(SURNAME, a, b) == SURNAME.exact_level - 1
    assert compare(GIVEN, a, record(given_name="lusted", surname="jones")) == 0


def test_dates_tolerate_a_transposed_day_and_month_or_one_typo() -> None:
    born = record(dob="19300213")
    strong = BIRTH.exact_level - 1
    assert compare(BIRTH, born, record(dob="19301302")) is None
    assert compare(BIRTH, record(dob="19300312"), record(dob="19301203")) == strong
    assert compare(BIRTH, born, record(dob="19300218")) == strong
    assert compare(BIRTH, born, record(dob="19310223")) == strong - 1
    assert compare(BIRTH, born, record(dob="19770521")) == 0


def test_ids_by_edit_distance_and_addresses_by_word_similarity() -> None:
    nid = record(national_id="7535316")
    assert compare(NATIONAL_ID, nid, record(national_id="7535361")) == 2
    assert compare(NATIONAL_ID, nid, record(national_id="7535000")) == 0
    a = record(address="forbes street")
    assert compare(ADDRESS, a, record(address="street forbes")) == 2
    assert compare(ADDRESS, a, record(address="forbs street")) == 2
    assert compare(ADDRESS, a, record(address="milne cove")) == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: Comparison("shoe_size", "exact"),
        lambda: Comparison("surname", "name"),
        lambda: Comparison("surname", "name", similarity=(0.9, 0.8)),
        lambda: Comparison("national_id", "id", similarity=(0.9,)),
        lambda: Comparison("national_id", "id", max_edits=(1, 2)),
        lambda: Comparison("state", "exact", max_edits=(1,)),
        lambda: Comparison("state", "exact", swap_with="surname"),
    ],
)
def test_inconsistent_comparisons_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


# Blocking


def test_blocking_keys_are_short_prefixed_strings() -> None:
    keys = DEFAULT_BLOCKING.keys(
        record(given_name="sarah", surname="bruhn", dob="19300213", national_id="7535316")
    )
    assert "dob:19300213" in keys
    assert "nid:7535316" in keys
    assert "nid_head:7535" in keys and "nid_tail:5316" in keys
    assert "names:b650|s600" in keys
    assert all(len(key) <= MAX_KEY_LENGTH for key in keys)
    assert DEFAULT_BLOCKING.keys(record()) == frozenset()


def test_a_long_value_still_gives_a_bounded_key() -> None:
    blocking = Blocking((BlockingRule("a", (KeyPart("address"), KeyPart("address_2"))),))
    (key,) = blocking.keys(record(address="x" * 500, address_2="y" * 500))
    assert len(key) <= MAX_KEY_LENGTH and key.startswith("a:")


def test_swapped_names_share_the_names_key() -> None:
    a = DEFAULT_BLOCKING.keys(record(given_name="petreece", surname="lusted"))
    b = DEFAULT_BLOCKING.keys(record(given_name="lusted", surname="petreece"))
    assert a & b


def test_soundex() -> None:
    assert soundex("Robert") == soundex("rupert") == "r163"
    assert soundex("ashcraft") == "a261"
    assert soundex("lee") == "l000"
    assert soundex("123") == ""


def test_candidate_pairs_for_deduplication_and_linkage() -> None:
    blocking = Blocking((BlockingRule("dob", (KeyPart("birth_date"),)),))
    people = [record(str(i), dob=dob) for i, dob in enumerate(["20000101", "20000101", "19990101"])]
    assert candidate_pairs(people, blocking) == [(0, 1)]
    others = [record("x", dob="19990101"), record("y", dob="20000101")]
    assert candidate_pairs(people, blocking, other=others) == [(0, 1), (1, 1), (2, 0)]


def test_a_crowded_key_is_skipped() -> None:
    rule = BlockingRule("dob", (KeyPart("birth_date"),))
    people = [record(str(i), dob="19000101") for i in range(5)]
    assert len(candidate_pairs(people, Blocking((rule,), max_block_size=5))) == 10
    assert candidate_pairs(people, Blocking((rule,), max_block_size=4)) == []


# The model


def hand_model() -> MatchModel:
    comparisons = (
        Comparison("surname", "exact"),
        Comparison("birth_date", "date", max_edits=(1,)),
    )
    return MatchModel(
        comparisons=comparisons,
        m=((0.1, 0.9), (0.05, 0.05, 0.9)),
        u=((0.99, 0.01), (0.989, 0.01, 0.001)),
        prior=0.001,
    )


def test_the_weight_is_the_sum_of_log_likelihood_ratios() -> None:
    model = hand_model()
    score = model.score(record(surname="smith", dob="19300213"), record(surname="smith"))
    assert [(f.field, f.level) for f in score.fields] == [("surname", 1), ("birth_date", None)]
    assert score.fields[1].weight == 0.0
    assert score.weight == pytest.approx(6.4919, abs=1e-4)
    odds = 2**score.weight * 0.001 / 0.999
    assert score.probability == pytest.approx(odds / (1 + odds))


def test_classify_by_posterior_and_thresholds() -> None:
    model = hand_model()
    same = model.score(
        record(surname="smith", dob="19300213"), record(surname="smith", dob="19300213")
    )
    assert same.probability > 0.9 and model.classify(same) == "link"
    different = model.score(
        record(surname="smith", dob="19300213"), record(surname="jones", dob="19771231")
    )
    assert model.classify(different) == "none"
    unsure = replace(model, link_threshold=0.999, review_threshold=0.5)
    assert unsure.classify(same) == "possible"
    assert model.decide(0.95) == "link" and model.decide(0.6) == "possible"


def test_models_round_trip_through_json() -> None:
    for model in (hand_model(), default_model()):
        saved = json.loads(json.dumps(model.to_json()))
        assert MatchModel.from_json(saved) == model


def test_invalid_models_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        replace(hand_model(), m=((0.2, 0.9), (0.05, 0.05, 0.9)))
    with pytest.raises(ValueError, match="levels"):
        replace(hand_model(), u=((0.99, 0.01), (0.99, 0.01)))
    with pytest.raises(ValueError, match="threshold"):
        replace(hand_model(), review_threshold=0.95)


def _broken(change: str) -> object:
    data = hand_model().to_json()
    if change == "not an object":
        return [data]
    if change == "format":
        data["format"] = "something else"
    elif change == "prior missing":
        del data["prior"]
    elif change == "prior text":
        data["prior"] = "0.001"
    elif change == "prior one":
        data["prior"] = 1.0
    elif change == "m length":
        data["comparisons"][1]["m"] = [0.5, 0.5]
    elif change == "u sum":
        data["comparisons"][0]["u"] = [0.5, 0.4]
    elif change == "kind":
        data["comparisons"][0]["kind"] = "fuzzy"
    elif change == "field":
        data["comparisons"][0]["field"] = "shoe_size"
    elif change == "extra":
        data["comparisons"][0]["weights"] = [1, 2]
    elif change == "thresholds":
        data["review_threshold"] = 0.99
    return data


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ("not an object", "model"),
        ("format", "format"),
        ("prior missing", "prior"),
        ("prior text", "prior"),
        ("prior one", "prior"),
        ("m length", "comparisons[1].m"),
        ("u sum", "comparisons[0].u"),
        ("kind", "comparisons[0].kind"),
        ("field", "comparisons[0]"),
        ("extra", "comparisons[0].weights"),
        ("thresholds", "review_threshold"),
    ],
)
def test_from_json_says_which_field_is_wrong(change: str, where: str) -> None:
    with pytest.raises(InputError) as raised:
        MatchModel.from_json(_broken(change))
    assert f"match model: {where}" in raised.value.message
    assert raised.value.hint


# Estimation

_NAMES = ["ann", "bob", "carla", "dmitri", "eve", "farah", "gustav", "hana", "ivan", "jia"]
_SURNAMES = ["smith", "jones", "nguyen", "okafor", "schmidt", "rossi", "tanaka", "silva"]


def _typo(text: str, chooser: random.Random) -> str:
    position = chooser.randrange(len(text))
    return text[:position] + chooser.choice("aeiourst") + text[position + 1 :]


def synthetic_people(count: int, seed: int) -> tuple[list[IdentityRecord], set[tuple[str, str]]]:
    """``count`` people and one corrupted copy of each: a typo in one field, one field lost."""
    chooser = random.Random(seed)
    records, pairs = [], set()
    for person in range(count):
        fields = {
            "given_name": chooser.choice(_NAMES),
            "surname": chooser.choice(_SURNAMES),
            "dob": f"{chooser.randint(1930, 2005)}{chooser.randint(1, 12):02d}"
            f"{chooser.randint(1, 28):02d}",
            "national_id": str(chooser.randint(1_000_000, 9_999_999)),
            "postcode": str(chooser.randint(2000, 2100)),
        }
        copy = dict(fields)
        corrupted = chooser.choice(["given_name", "surname", "national_id"])
        copy[corrupted] = _typo(copy[corrupted], chooser)
        del copy[chooser.choice(["dob", "postcode", "given_name"])]
        records.append(record(f"{person}-a", **fields))
        records.append(record(f"{person}-b", **copy))
        pairs.add((f"{person}-a", f"{person}-b"))
    return records, pairs


def test_em_learns_that_agreement_is_likelier_among_matches() -> None:
    records, _ = synthetic_people(150, seed=7)
    model = estimate(records, seed=3)
    assert model.iterations >= 1
    for comparison, m, u in zip(model.comparisons, model.m, model.u, strict=True):
        if comparison.field in {"given_name", "surname", "birth_date", "national_id", "postcode"}:
            exact = comparison.exact_level
            assert m[exact] > u[exact], comparison.field
            assert m[0] < u[0], comparison.field
    assert 0 < model.prior < 0.05
    assert estimate(records, seed=3) == model


def test_an_estimated_model_finds_the_duplicates() -> None:
    records, pairs = synthetic_people(150, seed=11)
    report = evaluate_deduplication(records, pairs, task="synthetic")
    assert report.pairs_completeness == 1.0
    assert report.precision >= 0.98 and report.recall >= 0.95
    assert report.em_iterations >= 1
    assert json.loads(report.to_json())["task"] == "synthetic"


def test_estimating_needs_a_pair() -> None:
    with pytest.raises(InputError, match="at least one pair"):
        estimate([record("only", surname="smith")])
    with pytest.raises(InputError, match="at least one pair"):
        estimate([record("a", surname="smith")], other=[])


def test_the_default_model_links_the_obvious_and_not_the_different() -> None:
    model = default_model()
    ann = record("1", given_name="ann", surname="smith", dob="19800101", postcode="2000")
    again = record("2", given_name="anne", surname="smith", dob="19800101", postcode="2000")
    other = record("3", given_name="bob", surname="jones", dob="19751212", postcode="3000")
    assert model.classify(model.score(ann, again)) == "link"
    assert model.classify(model.score(ann, other)) == "none"
    custom = default_model((Comparison("surname", "exact"),))
    assert custom.score(ann, again).weight == 0.0


def test_deduplication_links_every_pair_of_one_persons_records() -> None:
    person = {"given_name": "ann", "surname": "smith", "dob": "19800101", "postcode": "2000"}
    records = [
        record("1", **person),
        record("2", **{**person, "given_name": "anne"}),
        record("3", **{**person, "postcode": "2001"}),
        record("4", given_name="bob", surname="jones", dob="19751212", postcode="3000"),
    ]
    truth = {("1", "2"), ("1", "3"), ("2", "3")}
    report = evaluate_deduplication(records, truth, model=default_model())
    assert (report.links, report.true_positives, report.false_positives) == (3, 3, 0)
    assert report.em_iterations == 0
