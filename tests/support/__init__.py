"""What the tests share, by topic; tests import from here and never from one another.

- ``models``: the factory classifier and its seven features (the bench's models too),
  artifacts, alias targets, model-published events, site deployments, request instances;
- ``registry``: the one registration body, the registry under uvicorn, racing manifest writers;
- ``serving``: a serving runtime without Kafka, promoted versions, the app on a free port;
- ``edge``: the centre's ingest and a forwarding edge agent as processes, a link to cut;
- ``predicting``: a predict loop against an in-process agent;
- ``kafka``: reading a topic until the awaited messages arrived, a plain producer;
- ``waiting``: the one wait helper (sync and async);
- ``fakes``: in-memory stand-ins for producers and the centre;
- ``snapshots``: synthetic factory snapshots as Parquet;
- ``databases``, ``paths``: throwaway Postgres databases, the repository's folders;
- ``cli``: a stand-in HTTP service and the documents the CLI renders.

Fixtures stay in ``conftest.py`` files (pytest finds them there); these are plain helpers.
"""
