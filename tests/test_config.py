"""ModelConfig: round trips and errors that name the key and what is allowed."""

import pytest

from mmm_jax.config import DEFAULT_PRIORS, ConfigError, GeometricAdstock, ModelConfig, Prior


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
        (dict(likelihood="poisson"), r"likelihood: 'poisson' is not allowed; allowed: \['normal', 'studentt'\]"),
        (dict(seasonality=-1), "seasonality: must be an integer >= 0"),
        (dict(channels=[]), "channels: at least one channel"),
        (dict(channels="tv"), "channels: must be a list"),
        (dict(trend="yes"), "trend: must be true or false"),
        (dict(adstock={"l_max": 0}), "adstock.l_max: must be a positive integer"),
        (dict(adstock={"kind": "weibull"}), r"adstock.kind: 'weibull' is not available; allowed: \['geometric'\]"),
        (dict(adstock={"lmax": 3}), r"adstock.lmax: unknown key .*allowed: \['l_max', 'normalize'\]"),
        (dict(saturation={"kind": "hill"}), "saturation.kind: 'hill' is not available"),
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
