"""Budget optimisation over posterior samples (optax, projected gradients, batched)."""

from .optimize import OBJECTIVES, BudgetProblem, OptimizeResult, objective_value, optimize_allocation
from .plan import BudgetError, BudgetPlan, ExtrapolationWarning, build_problem, optimize_budget
from .projection import project_budget, project_budget_capped
from .response import (
    ResponseParams,
    gross_response,
    plan_contributions,
    plan_response,
    response_params_from_mmm,
)

__all__ = [
    "BudgetError",
    "BudgetPlan",
    "ExtrapolationWarning",
    "build_problem",
    "optimize_budget",
    "OBJECTIVES",
    "BudgetProblem",
    "OptimizeResult",
    "objective_value",
    "optimize_allocation",
    "project_budget",
    "project_budget_capped",
    "ResponseParams",
    "plan_contributions",
    "plan_response",
    "gross_response",
    "response_params_from_mmm",
]
