from pathlib import Path

from millrace_common.contracts import ModelPublished, schema_files

SCHEMAS = Path(__file__).resolve().parents[3] / "libs" / "common" / "schemas"


def test_committed_json_schemas_match_the_contracts() -> None:
    committed = {p.name: p.read_bytes() for p in SCHEMAS.glob("*.schema.json")}
    generated = schema_files()
    assert set(committed) == set(generated), "run `make schemas` and commit the result"
    for name, content in generated.items():
        assert committed[name] == content, f"{name} drifted: run `make schemas` and commit"


def test_model_published_uses_schema_key_on_the_wire() -> None:
    event = ModelPublished.model_validate(
        {
            "event_id": "e",
            "name": "m",
            "version": 1,
            "alias": "production",
            "artifact_uri": "s3://b/k",
            "sha256": "0" * 64,
            "size": 1,
            "lineage_id": "l",
            "published_at": "2026-01-01T00:00:00Z",
            "schema": {"features": ["a"], "inputs": [], "outputs": [], "task": "regression"},
        }
    )
    assert '"schema"' in event.model_dump_json(by_alias=True)
