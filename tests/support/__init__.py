"""What the tests share, by topic; tests import from here and never from one another.

- ``models``: the factory classifier and its seven features (the bench's models too),
  artifacts, alias targets, model-published events, site deployments, request instances;
- ``registry``: the one registration body, a registry runtime, the registry under uvicorn,
  racing manifest writers; ``registry_ui``: a populated registry and a page's text;
- ``serving``: a serving runtime without Kafka, promoted versions, the app on a free port;
- ``edge``: a forwarding edge agent as a process, a link to cut, the agent's status and
  version, what reached ``raw`` and ``predictions``;
- ``features``: the features worker and what an uninterrupted one computes;
- ``ingest``: the centre's ingest as a process; ``records``: a valid ``machines`` record;
- ``training``: train requests and the registry's documents once training is done;
- ``predicting``: a predict loop on a thread while models swap;
- ``kafka``: reading a topic until what is awaited arrived, a plain producer, publishing
  a model and sending a train request as the platform does;
- ``waiting``: the one wait helper (``wait_until`` for threads, ``until`` for coroutines);
- ``fakes``: in-memory stand-ins for the producer and for the centre the edge forwards to;
- ``snapshots``: synthetic factory snapshots as Parquet;
- ``databases``, ``s3``, ``paths``: throwaway Postgres databases, moto's S3 server, the
  repository's folders; ``platform``: the whole platform for the end-to-end tests;
- ``cli``, ``cli_documents``: a stand-in HTTP service, running ``millrace`` in-process,
  and the documents the CLI renders.

Fixtures stay in ``conftest.py`` files (pytest finds them there); these are plain helpers.
"""
