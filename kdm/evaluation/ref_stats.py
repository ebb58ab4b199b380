# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""Reference statistics: read the formats the papers used, write kdm's own (``spec/metrics_data.md`` section 1.5).

Read by :func:`load_reference`:

- EDM ``fid-refs/*.npz`` and pytorch-fid ``--save-stats``: ``mu`` (2048,), ``sigma`` (2048, 2048);
- ADM / DKDM reference batches ``.npz``: ``arr_0`` uint8 NHWC images, optionally ``mu, sigma, mu_s, sigma_s``
  (used instead of recomputing, as ADM's evaluator does);
- clean-fid ``*_kid.npz``: ``feats`` (all features);
- EDM2 ``dataset-refs/*.pkl``: ``{'fid': {'mu', 'sigma'}, ...}`` through the restricted unpickler of
  ``kdm.models.teachers.edm_pickle``;
- kdm's ``tools/fid_ref.py`` ``.npz``: ``mu, sigma`` (+ ``mu_s, sigma_s``, ``features``, ``logits``) and
  ``kdm_meta``, a JSON string with the protocol.

Written by :func:`save_reference`: kdm's npz (uncompressed, atomically), readable by EDM's and ADM's scripts too
(they only look at ``mu``/``sigma``/``mu_s``/``sigma_s``).
"""
import io
import json
import os
import tempfile
from typing import Dict, Optional

import numpy as np

#: Version of kdm's reference file layout (stored in the metadata).
REF_FORMAT = 'kdm-ref-v1'


def load_reference(path: str) -> Dict:
    """Read a reference file into a dict with the keys it has among ``mu, sigma, mu_s, sigma_s, features,
    logits, images`` (uint8 NHWC), ``labels``, plus ``meta`` (dict, empty for foreign files), ``num_images``
    (int or None), ``path`` and ``format``.

    Raises:
        FileNotFoundError: missing file. ValueError: a file with none of the known keys or malformed arrays.
    """
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"reference statistics file '{path}' not found (make one with tools/fid_ref.py, "
                                'or use EDM fid-refs/*.npz, an ADM reference batch .npz or an EDM2 .pkl)')
    out: Dict = dict(path=path, meta={}, num_images=None)
    if path.endswith('.pkl'):
        try:
            from kdm.models.teachers.edm_pickle import load_edm_reference_stats
        except ImportError as e:
            raise ImportError(f'reading {path} needs kdm.models.teachers.edm_pickle.load_edm_reference_stats '
                              f'(the restricted EDM unpickler): {e}') from e
        data = load_edm_reference_stats(path)
        fid = data.get('fid', data) if isinstance(data, dict) else None
        if not isinstance(fid, dict) or 'mu' not in fid or 'sigma' not in fid:
            raise ValueError(f'{path}: no FID statistics (expected {{"fid": {{"mu", "sigma"}}}} as in EDM2)')
        out.update(mu=np.asarray(fid['mu'], np.float64), sigma=np.asarray(fid['sigma'], np.float64),
                   format='edm2-pkl', num_images=data.get('num_images'))
    else:
        try:
            npz = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"cannot read reference file '{path}' as .npz: {e}") from e
        with npz:
            keys = set(npz.files)
            for k in ('mu', 'sigma', 'mu_s', 'sigma_s'):
                if k in keys:
                    out[k] = np.asarray(npz[k], np.float64)
            for src, dst in (('features', 'features'), ('feats', 'features'), ('logits', 'logits')):
                if src in keys and dst not in out:
                    out[dst] = np.asarray(npz[src], np.float32)
            if 'arr_0' in keys:
                out['images'] = npz['arr_0']
                if 'arr_1' in keys:
                    out['labels'] = npz['arr_1']
            if 'kdm_meta' in keys:
                out['meta'] = json.loads(str(npz['kdm_meta']))
                out['num_images'] = out['meta'].get('num_images')
        if not any(k in out for k in ('mu', 'features', 'images', 'mu_s')):
            raise ValueError(f'{path} holds none of mu/sigma, mu_s/sigma_s, features or arr_0 images '
                             f'(keys: {sorted(keys)})')
        out['format'] = ('kdm' if 'kdm_meta' in keys else 'adm' if 'arr_0' in keys
                         else 'clean-fid' if 'feats' in keys else 'edm')
    for m, s in (('mu', 'sigma'), ('mu_s', 'sigma_s')):
        if (m in out) != (s in out):
            raise ValueError(f'{path} has {m if m in out else s} without {s if m in out else m}')
        if m in out:
            d = out[m].shape
            if out[m].ndim != 1 or out[s].shape != (d[0], d[0]):
                raise ValueError(f'{path}: {m} must be (D,) and {s} (D, D), got {out[m].shape} and {out[s].shape}')
    if 'images' in out:
        imgs = out['images']
        if imgs.dtype != np.uint8 or imgs.ndim != 4 or imgs.shape[3] not in (1, 3):
            raise ValueError(f'{path}: arr_0 must be uint8 (N, H, W, C) images, got {imgs.dtype} {imgs.shape}')
    if out['num_images'] is None:
        for k in ('features', 'images'):
            if k in out:
                out['num_images'] = len(out[k])
                break
    return out


def save_reference(path: str, mu: Optional[np.ndarray] = None, sigma: Optional[np.ndarray] = None,
                   mu_s: Optional[np.ndarray] = None, sigma_s: Optional[np.ndarray] = None,
                   features: Optional[np.ndarray] = None, logits: Optional[np.ndarray] = None,
                   meta: Optional[dict] = None) -> None:
    """Write kdm's reference npz atomically (temp file + rename); ``meta`` (protocol: detector, weights sha256,
    resize, ddof, num_images, source) is stored as JSON under ``kdm_meta``."""
    arrays = {}
    for k, v in dict(mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s).items():
        if v is not None:
            arrays[k] = np.asarray(v, np.float64)
    if features is not None:
        arrays['features'] = np.asarray(features, np.float32)
    if logits is not None:
        arrays['logits'] = np.asarray(logits, np.float32)
    if not arrays:
        raise ValueError('save_reference: nothing to save')
    meta = dict(meta or {})
    meta.setdefault('format', REF_FORMAT)
    arrays['kdm_meta'] = np.array(json.dumps(meta, default=str))
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            f.write(buf.getvalue())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def check_protocol(ref: Dict, detector_protocol: Dict, what: str) -> None:
    """Refuse to compare features from different detectors.

    A kdm reference file records its detector; when it names another detector family than the metric's, or the
    weights' SHA-256 differs (both known and not 'random'), a ValueError says so. Foreign files carry no protocol
    and are assumed to be Inception-2015-12-05 statistics (EDM / ADM / pytorch-fid).
    """
    meta = ref.get('meta') or {}
    ref_det = meta.get('detector')
    if not ref_det:
        if not str(detector_protocol.get('detector', '')).startswith('FIDInceptionV3'):
            raise ValueError(f'{what}: {ref.get("path")} holds Inception statistics (a {ref.get("format")} file '
                             f'without protocol) but the metric uses {detector_protocol.get("detector")}')
        return
    fam = lambda s: str(s).split(' ')[0]  # noqa: E731
    if fam(ref_det) != fam(detector_protocol.get('detector')):
        raise ValueError(f'{what}: {ref.get("path")} was computed with {ref_det} but the metric uses '
                         f'{detector_protocol.get("detector")}; recompute it with tools/fid_ref.py')
    a, b = meta.get('weights_sha256'), detector_protocol.get('weights_sha256')
    if a and b and 'random' not in (a, b) and a != b:
        raise ValueError(f'{what}: {ref.get("path")} was computed with detector weights sha256 {a[:12]}... but the '
                         f'metric loads {b[:12]}... ({detector_protocol.get("weights")}); use the same weight file')
