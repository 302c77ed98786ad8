"""omsctl: the operator and developer CLI (`omsctl up`, `down`, `status`)."""
