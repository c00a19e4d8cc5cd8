"""Budget optimisation over posterior samples (optax, projected gradients, batched)."""

from .optimize import OBJECTIVES, BudgetProblem, OptimizeResult, minimum_budget, objective_value, optimize_allocation
from .plan import BudgetError, BudgetPlan, ExtrapolationWarning, build_problem, minimum_budget_plan, optimize_budget
from .projection import project_budget, project_budget_capped
from .response import (
    ResponseParams,
    ResponseSpec,
    geometric_logistic_params,
    gross_response,
    net_response_fn,
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
    "minimum_budget_plan",
    "OBJECTIVES",
    "BudgetProblem",
    "OptimizeResult",
    "objective_value",
    "optimize_allocation",
    "minimum_budget",
    "project_budget",
    "project_budget_capped",
    "ResponseParams",
    "ResponseSpec",
    "geometric_logistic_params",
    "net_response_fn",
    "plan_contributions",
    "plan_response",
    "gross_response",
    "response_params_from_mmm",
]
