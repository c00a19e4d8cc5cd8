"""Facades over the functional core: :class:`~.mmm.MMM` (one brand) and
:class:`~.markets.HierarchicalMMM` (markets), both :class:`~.fitted.FittedModel`; the market
analyses they share with the budget code (:mod:`.market_analysis`)."""
