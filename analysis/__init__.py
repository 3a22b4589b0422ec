"""lossarena.analysis: pairwise-comparison analysis (outliers, matrices, winning frequencies,
Thurstone/JOD and Bradley-Terry scaling, reports). Independent of the codecs; no torch.

Main entry points (see docs/analysis.md):

* votes: :func:`read_votes`, :func:`read_any` (foreign formats), :func:`write_votes`, :func:`prepare_votes`
* scaling: :func:`fit_thurstone` (count matrix -> JOD), :func:`fit_bt`, :func:`scale_votes` (votes -> scores table)
* outliers: :func:`score_outliers`, :func:`filter_votes`, :func:`circular_triads`
* matrices: :func:`preference_matrices`, :func:`winning_frequency`, :func:`pairwise_tests`
* report: :func:`build_report` (votes or path -> DIR/index.html)
* simulation: :func:`simulate_votes`
"""

from .matrices import (
    adjust_pvalues,
    overall_winning_frequency,
    pairwise_tests,
    preference_matrices,
    winning_frequency,
)
from .outliers import circular_triads, filter_votes, read_outliers, score_outliers, write_outliers
from .readers import FORMATS, read_any, votes_from_counts
from .report import build_report
from .scaling import counts_from_votes, fit_bt, scale_votes
from .simulate import demo_truth, simulate_votes
from .thurstone import SIGMA, ScaleFit, fit_thurstone, jod_covariance, jod_to_probability, probability_to_jod
from .votes import encode_votes, find_duplicates, prepare_votes, read_votes, write_votes

__all__ = [
    "FORMATS", "SIGMA", "ScaleFit", "adjust_pvalues", "build_report", "circular_triads", "counts_from_votes",
    "demo_truth", "encode_votes", "filter_votes", "find_duplicates", "fit_bt", "fit_thurstone",
    "jod_covariance", "jod_to_probability", "overall_winning_frequency", "pairwise_tests", "preference_matrices",
    "prepare_votes", "probability_to_jod", "read_any", "read_outliers", "read_votes", "scale_votes",
    "score_outliers", "simulate_votes", "votes_from_counts", "winning_frequency", "write_outliers",
    "write_votes",
]
