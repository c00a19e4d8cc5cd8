"""ModelConfig: round trips and errors that name the key and what is allowed."""

import json

import pytest
from mmm_jax.config.model import (
    DEFAULT_PRIORS,
    ConfigError,
    DelayedAdstock,
    GeometricAdstock,
    HillSaturation,
    LogisticSaturation,
    MichaelisMentenSaturation,
    ModelConfig,
    Prior,
    TanhSaturation,
    WeibullAdstock,
)


def base(**kw):
    d = dict(date="date", target="sales", channels=["tv", "search"], controls=["price"])
    d.update(kw)
    return d


def test_round_trip_dict_yaml_json(tmp_path):
    cfg = ModelConfig.from_dict(base(priors={"beta": {"dist": "HalfNormal", "sigma": [0.5, 1.0]}},
                                     adstock={"kind": "geometric", "l_max": 6, "normalize": False},
                                     likelihood="studentt", seasonality=3))
    assert cfg.adstock == GeometricAdstock(l_max=6, normalize=False)
    assert cfg.prior("beta") == Prior("HalfNormal", sigma=[0.5, 1.0])
    assert cfg.prior("alpha") == DEFAULT_PRIORS["alpha"]
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    for name in ("c.yaml", "c.json"):
        cfg.to_file(tmp_path / name)
        assert ModelConfig.from_file(tmp_path / name) == cfg


@pytest.mark.parametrize(
    "patch,match",
    [
        (dict(likelihood="gamma"),
         r"likelihood: 'gamma' is not allowed; allowed: \['normal', 'studentt', 'poisson', 'negative_binomial'\]"),
        (dict(time_varying_intercept={"m": 0}), "time_varying_intercept.m: must be a positive integer"),
        (dict(time_varying_intercept={"kernel": "rbf"}), r"time_varying_intercept.kernel: 'rbf' is not available"),
        (dict(time_varying_intercept={"ell": 1}), r"time_varying_intercept: unknown keys \['ell'\]"),
        (dict(time_varying_intercept=3), "time_varying_intercept: expected true or a mapping"),
        (dict(time_varying_media={"c": 0.9}), "time_varying_media.c: must be a number > 1"),
        (dict(time_varying_media={"hierarchical": "yes"}), "time_varying_media.hierarchical: must be true or false"),
        (dict(time_varying_media={"zero_sum": 0}), "time_varying_media.zero_sum: must be true or false"),
        (dict(time_varying_media={"link": "log"}), r"time_varying_media.link: 'log' is not allowed; allowed: \['exp'"),
        (dict(time_varying_media={"lengthscale": 2}), r"time_varying_media.lengthscale: unknown key; allowed: \["),
        (dict(time_varying_media={"param": "slope"}),
         r"time_varying_media.param: 'slope' is not a parameter of the logistic saturation; allowed: \['beta', 'lam'\]"),
        (dict(time_varying_media={"delta_eta_prior": {"dist": "Nope"}}),
         "time_varying_media.delta_eta_prior: unknown distribution 'Nope'"),
        (dict(roas_prior={"radio": {"dist": "LogNormal"}}), r"roas_prior.radio: unknown channel; channels: \['tv'"),
        (dict(roas_prior={"tv": {"dist": "LogNormal"}}, cac_prior={"tv": {"dist": "LogNormal"}}),
         "cac_prior.tv: channel 'tv' already has a roas_prior"),
        (dict(roas_prior=[1]), "roas_prior: expected a mapping of channel -> prior"),
        (dict(roas_prior={"tv": {"dist": "LogNormal", "scale": 1}}), "roas_prior.tv: bad parameters"),
        (dict(saturation="tanh", cac_prior={"tv": {"dist": "LogNormal"}}),
         "cac_prior: needs a saturation with a beta coefficient"),
        (dict(time_varying_media={"param": "lam"}, roas_prior={"tv": {"dist": "LogNormal"}}),
         "roas_prior: with time_varying_media the varying parameter must be beta"),
        (dict(seasonality=-1), "seasonality: must be an integer >= 0"),
        (dict(channels=[]), "channels: at least one channel"),
        (dict(channels="tv"), "channels: must be a list"),
        (dict(trend="yes"), "trend: must be true or false"),
        (dict(adstock={"l_max": 0}), "adstock.l_max: must be a positive integer"),
        (dict(adstock={"type": "exponential"}),
         r"adstock.type: 'exponential' is not available; allowed: \['delayed', 'geometric', 'weibull'\]"),
        (dict(adstock="carryover"), r"adstock.type: 'carryover' is not available; allowed: \['delayed', 'geometric'"),
        (dict(adstock={"kind": "pdf"}), r"adstock.kind: 'pdf' is not available; allowed adstock types: .*type: weibull"),
        (dict(adstock={"type": "weibull", "kind": "pmf"}),
         r"adstock.kind: 'pmf' is not allowed for weibull; allowed: \['cdf', 'pdf'\]"),
        (dict(adstock={"lmax": 3}), r"adstock.lmax: unknown key .*allowed: \['infinite', 'l_max', 'normalize'\]"),
        (dict(adstock={"type": "delayed", "infinite": True}),
         r"adstock.infinite: unknown key for delayed adstock; allowed: \['l_max', 'normalize'\]"),
        (dict(adstock={"type": "geometric", "infinite": "yes"}), "adstock.infinite: must be true or false"),
        (dict(adstock={"type": "weibull", "normalize": 1}), "adstock.normalize: must be true or false"),
        (dict(adstock=[8]), "adstock: expected a mapping such as"),
        (dict(saturation={"kind": "hill", "slope": 2}), r"saturation.slope: unknown key for hill saturation; allowed: \[\]"),
        (dict(saturation={"type": "gompertz"}),
         r"saturation.type: 'gompertz' is not available; allowed: \['hill', 'logistic', 'michaelis_menten', 'tanh'\]"),
        (dict(saturation={"kind": "exp"}), r"saturation.kind: 'exp' is not available; allowed saturation types"),
        (dict(adstock_first="no"), "adstock_first: must be true or false"),
        (dict(saturation="tanh", priors={"lam": {"dist": "Gamma", "alpha": 2, "beta": 1}}),
         r"priors.lam: not a parameter of the geometric adstock and tanh saturation; "
         r"their parameters: \['alpha', 'sat_level', 'cac0'\]"),
        (dict(priors={"gamma": {"dist": "Normal"}}), r"priors.gamma: unknown parameter; allowed: \["),
        (dict(priors={"beta": {"dist": "HalfNormalish", "sigma": 1}}), "priors.beta: unknown distribution 'HalfNormalish'"),
        (dict(priors={"beta": {"dist": "HalfNormal", "mu": 1}}), "priors.beta: bad parameters"),
        (dict(priors={"beta": 3}), "priors.beta: expected a mapping"),
        (dict(colour="red"), "colour: unknown key; allowed keys"),
    ],
)
def test_bad_config_names_key(patch, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig.from_dict(base(**patch))


def test_missing_required_key():
    with pytest.raises(ConfigError, match="target: required key is missing"):
        ModelConfig.from_dict({"date": "d", "channels": ["a"]})


def test_bad_file_suffix(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("{}")
    with pytest.raises(ConfigError, match="use a .yaml, .yml or .json"):
        ModelConfig.from_file(p)


FAMILIES = [
    (GeometricAdstock(l_max=6, normalize=False), {"type": "geometric", "l_max": 6, "normalize": False, "infinite": False}),
    (GeometricAdstock(infinite=True), {"type": "geometric", "l_max": 8, "normalize": True, "infinite": True}),
    (DelayedAdstock(l_max=10), {"type": "delayed", "l_max": 10, "normalize": True}),
    (WeibullAdstock(l_max=12, kind="pdf"), {"type": "weibull", "l_max": 12, "normalize": True, "kind": "pdf"}),
    (WeibullAdstock(), {"type": "weibull", "l_max": 8, "normalize": True, "kind": "cdf"}),
]
SATURATIONS = [LogisticSaturation(), TanhSaturation(), HillSaturation(), MichaelisMentenSaturation()]


@pytest.mark.parametrize("adstock,as_dict", FAMILIES)
@pytest.mark.parametrize("saturation", SATURATIONS)
def test_every_family_round_trips(tmp_path, adstock, as_dict, saturation):
    last = saturation.param_names[-1]
    cfg = ModelConfig(**base(adstock=adstock, saturation=saturation, adstock_first=False,
                             priors={last: {"dist": "LogNormal", "mu": 0.5, "sigma": [0.5, 0.7]}}))
    assert cfg.prior(last) == Prior("LogNormal", mu=0.5, sigma=[0.5, 0.7])
    d = cfg.to_dict()
    assert d["adstock"] == as_dict
    assert d["saturation"] == {"type": saturation.type}
    assert d["adstock_first"] is False
    assert ModelConfig.from_dict(d) == cfg
    assert ModelConfig.from_dict(json.loads(cfg.to_json())) == cfg
    cfg.to_file(tmp_path / "c.yaml")
    assert ModelConfig.from_file(tmp_path / "c.yaml") == cfg
    # every media parameter has a default prior, beta (when present) first like the original model
    assert all(name in DEFAULT_PRIORS for name in cfg.media_params)
    assert set(cfg.media_params) == set(adstock.param_names) | set(saturation.param_names)
    if "beta" in cfg.media_params:
        assert cfg.media_params[0] == "beta"


def test_yaml_spelling_from_the_issue_and_shorthands(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "date: date\ntarget: sales\nchannels: [tv, search]\n"
        "adstock: {type: weibull, kind: pdf, l_max: 12}\nsaturation: tanh\nadstock_first: false\n"
    )
    cfg = ModelConfig.from_file(tmp_path / "c.yaml")
    assert cfg.adstock == WeibullAdstock(l_max=12, kind="pdf")
    assert cfg.saturation == TanhSaturation()
    assert cfg.adstock_first is False
    assert cfg.media_params == ("weibull_shape", "weibull_scale", "sat_level", "cac0")
    # Python objects, dicts and names are interchangeable in the constructor
    assert ModelConfig(**base(adstock={"type": "delayed", "l_max": 5}, saturation="hill")) == ModelConfig(
        **base(adstock=DelayedAdstock(l_max=5), saturation=HillSaturation()))


def test_older_config_dicts_still_load():
    """Files written before the model library ({kind: geometric}, no adstock_first) read the same."""
    old = base(adstock={"kind": "geometric", "l_max": 6, "normalize": True}, saturation={"kind": "logistic"},
               priors={"lam": {"dist": "Gamma", "alpha": 2.0, "beta": 2.0}})
    cfg = ModelConfig.from_dict(old)
    assert cfg.adstock == GeometricAdstock(l_max=6)
    assert cfg.saturation == LogisticSaturation()
    assert cfg.adstock_first is True
    assert cfg.media_params == ("beta", "alpha", "lam")
    assert ModelConfig.from_dict(base()) == ModelConfig(**base())


def test_model_library_options_round_trip(tmp_path):
    """HSGP terms, count likelihoods and ROAS / CAC priors through dict, JSON and YAML."""
    from mmm_jax.config.model import TimeVaryingMedia
    from mmm_jax.model.hsgp import HSGPSpec

    cfg = ModelConfig(**base(
        likelihood="negative_binomial",
        time_varying_intercept=True,
        time_varying_media={"hierarchical": True, "m": 14, "c": 2.5, "kernel": "matern52",
                            "eta_prior": {"dist": "HalfNormal", "sigma": 0.3},
                            "delta_ell_prior": {"dist": "InverseGamma", "alpha": 4, "beta": 1}},
        roas_prior={"tv": {"dist": "LogNormal", "mu": 0.0, "sigma": 0.4}},
        cac_prior={"search": Prior("Gamma", alpha=4.0, beta=0.1)},
        priors={"overdispersion": {"dist": "HalfNormal", "sigma": 0.2}},
    ))
    assert cfg.time_varying_intercept == HSGPSpec()
    assert cfg.time_varying_media == TimeVaryingMedia(
        hsgp=HSGPSpec(m=14, c=2.5, kernel="matern52", eta_prior=Prior("HalfNormal", sigma=0.3)), hierarchical=True,
        delta_ell_prior=Prior("InverseGamma", alpha=4, beta=1))
    assert cfg.time_varying_media.varying_param(cfg.saturation) == "beta"
    assert cfg.is_count and cfg.business_priors == {"tv": ("roas", cfg.roas_prior["tv"]),
                                                    "search": ("cac", cfg.cac_prior["search"])}
    d = cfg.to_dict()
    assert d["time_varying_media"]["m"] == 14 and d["time_varying_media"]["hierarchical"] is True
    assert ModelConfig.from_dict(d) == cfg
    assert ModelConfig.from_dict(json.loads(cfg.to_json())) == cfg
    for name in ("c.yaml", "c.json"):
        cfg.to_file(tmp_path / name)
        assert ModelConfig.from_file(tmp_path / name) == cfg
    # the HSGP keys may also sit under 'hsgp'; False / absent switch the options off
    nested = ModelConfig(**base(time_varying_media={"hsgp": {"m": 14}, "param": "lam"}))
    assert nested.time_varying_media.hsgp.m == 14 and nested.time_varying_media.varying_param(nested.saturation) == "lam"
    tanh = ModelConfig(**base(saturation="tanh", time_varying_media=True))
    assert tanh.time_varying_media.varying_param(tanh.saturation) == "cac0"
    off = ModelConfig(**base(time_varying_intercept=False, time_varying_media=False))
    assert off.time_varying_intercept is None and off.time_varying_media is None
    # configs without the new options write exactly the keys they wrote before
    assert set(ModelConfig(**base()).to_dict()) == {"date", "target", "channels", "controls", "adstock", "saturation",
                                                  "adstock_first", "trend", "seasonality", "likelihood", "priors"}
