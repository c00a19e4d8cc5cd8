"""The model: one ``pm.Model`` builder for one brand and for markets (:mod:`.build`), its HSGP
terms (:mod:`.hsgp`), likelihoods (:mod:`.likelihood`), per-parameter pooling (:mod:`.pooling`)
and the market description a panel gives it (:mod:`.markets`)."""
