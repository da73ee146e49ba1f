"""The common core every stage and paper builds on: params, records and files, the response
cache, the cost ledger, MLflow tracking, and the stage declaration with its runner."""
