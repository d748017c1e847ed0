"""Forecasting models and how they are judged: the forecasters behind one fit/predict
contract, metrics, the backtest, training and its gate, the registry and the weekly champion."""
