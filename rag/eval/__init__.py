"""Evaluation support for `make eval`: metrics, dataset loaders and the naive LangChain baseline.
Not used by the product at run time."""
