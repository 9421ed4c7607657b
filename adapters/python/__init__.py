"""Python models: a callable, a joblib/pickle estimator, or module:function."""
