"""Getting a model version safely to production: provenance, golden examples, the validation gate."""
