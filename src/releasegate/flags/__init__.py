"""Feature switches (seed 003's `SUPPLIER_EVAL_ENABLED=true` in `.env`, and OpenFeature flagd
flag files): names and values checked (values.py), the files edited as text (dotenv.py,
flagd.py), the host programs that read and write them through the one executor
(hostfiles.py), and what the ledger says about them (ledger.py). The workflow is
releasegate.workflows.flags."""
