"""Train a RandomForest on the Wisconsin breast-cancer data (bundled with scikit-learn: no download).

Azure ML style: hyperparameters as arguments, metrics through MLflow (``mlflow.log_metric``; the
validation accuracy is logged as the forest grows, one report per tenth of the trees, so an
early-termination policy has intervals to look at), the model written to ./outputs.

    python train.py --n-estimators 100 --max-depth 6 --min-samples-leaf 1 --max-features 0.5
"""

import argparse
import json
import os
import pickle

import mlflow
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--n-estimators", type=int, default=100)
parser.add_argument("--max-depth", type=float, default=0, help="0 for unlimited")
parser.add_argument("--min-samples-leaf", type=float, default=1)
parser.add_argument("--max-features", type=float, default=0.5, help="fraction of the features per split")
parser.add_argument("--random-state", type=int, default=42)
args = parser.parse_args()

max_depth = int(args.max_depth) or None
min_leaf = max(1, int(round(args.min_samples_leaf)))
max_features = min(1.0, max(0.05, args.max_features))
ds = load_breast_cancer()
x_train, x_val, y_train, y_val = train_test_split(ds.data, ds.target, test_size=0.3,
                                                  random_state=args.random_state, stratify=ds.target)
mlflow.log_params({"n_estimators": args.n_estimators, "max_depth": max_depth, "min_samples_leaf": min_leaf,
                   "max_features": max_features})
model = RandomForestClassifier(n_estimators=args.n_estimators, max_depth=max_depth, min_samples_leaf=min_leaf,
                               max_features=max_features, random_state=args.random_state, n_jobs=1)
model.fit(x_train, y_train)

# Validation accuracy as the forest grows: the primary metric's reports (intervals).
every = max(1, args.n_estimators // 10)
proba = np.zeros((len(y_val), len(model.classes_)))
for i, tree in enumerate(model.estimators_, start=1):
    proba += tree.predict_proba(x_val)
    if i % every == 0 or i == args.n_estimators:
        acc = float(np.mean(model.classes_[proba.argmax(axis=1)] == y_val))
        mlflow.log_metric("val_accuracy", acc, step=i)
train_acc = float(model.score(x_train, y_train))
mlflow.log_metric("train_accuracy", train_acc)
print(f"val_accuracy {acc:.4f}  train_accuracy {train_acc:.4f}")

os.makedirs("outputs", exist_ok=True)
with open(os.path.join("outputs", "model.pkl"), "wb") as f:
    pickle.dump(model, f)
with open(os.path.join("outputs", "model.json"), "w") as f:
    json.dump({"val_accuracy": acc, "params": vars(args)}, f, indent=2)
