"""The trial script of seed 004 ("Train models with REST"): ``python main.py --iris-csv PATH``,
plus ``--learning_rate``/``--boosting`` from the sweep. The seed trains LightGBM; here a
scikit-learn GradientBoostingClassifier plays it ("dart" = stochastic boosting) and logs the same
metric name, ``test-multi_logloss``, once per 10 boosting stages (the sweep's intervals).
"""

import argparse
import csv

import mlflow
import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--iris-csv", required=True)
parser.add_argument("--learning_rate", type=float, default=0.1)
parser.add_argument("--boosting", default="gbdt", choices=("gbdt", "dart"))
args = parser.parse_args()

with open(args.iris_csv, newline="") as f:
    rows = list(csv.reader(f))[1:]
x = np.array([[float(v) for v in r[:4]] for r in rows])
y = np.array([r[4] for r in rows])
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
model = GradientBoostingClassifier(n_estimators=50, learning_rate=args.learning_rate, max_depth=2,
                                   subsample=0.7 if args.boosting == "dart" else 1.0, random_state=0)
model.fit(x_train, y_train)
mlflow.log_params({"learning_rate": args.learning_rate, "boosting": args.boosting})
for stage, proba in enumerate(model.staged_predict_proba(x_test), start=1):
    if stage % 10 == 0:
        loss = float(log_loss(y_test, proba, labels=model.classes_))
        mlflow.log_metric("test-multi_logloss", loss, step=stage)
print(f"test-multi_logloss {loss:.4f}")
