"""Model packages made from models kept elsewhere: `meshserve import models:/NAME/VERSION` turns a
version of the MLflow Model Registry into a meshserve model package (see docs/mlflow.md)."""
