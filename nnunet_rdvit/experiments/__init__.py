"""Low-data experiment grids: trainers × data fractions × folds × configurations, run through nnU-Net's own
``nnUNetv2_train`` (runner), then summarised from nnU-Net's validation summaries (aggregate, stats, plot, report);
learning curves of time-budgeted runs, scored snapshot by snapshot (learning_curve).

Modules here import neither torch nor nnU-Net at import time, so ``nnunet-rdvit experiment run --dry-run`` stays
fast; the aggregation and test-set steps import what they need when they run.
"""
