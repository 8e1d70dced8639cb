"""KerasClassifier and KerasRegressor: Keras models as scikit-learn estimators.

One private base (``base``), the two estimators, and their helpers: parameter
routing, target encoding, seeding and serialisation.
"""
