"""Training-set statistics: the mean image and the RGB covariance with its PCA.

The paper subtracts "the mean activity over the training set from each pixel"
(a per-position mean image) and draws its lighting noise along the principal
components of the 3x3 covariance of all RGB training pixels on the 0..255
scale. make_tfrecords computes both in the same pass that writes the shards.

Accumulators hold exact integer sums (uint8 pixels), so partial statistics
from any number of workers merge exactly and in any order: a resumed run gives
the same bytes as an uninterrupted one. On disk (OUT/stats.npz, np.savez):

    mean_image    float64 [R, R, 3]  per-position mean, 0..255 (R = --resize)
    covariance    float64 [3, 3]     of all RGB pixels, 0..255, divided by N
    eigenvalues   float64 [3]        descending
    eigenvectors  float64 [3, 3]     columns p1 p2 p3, matching eigenvalues
    num_images    int64
    num_pixels    int64
"""
import dataclasses
import os
import zipfile

import numpy as np

from keras_alexnet.data import layout


@dataclasses.dataclass
class DatasetStats:
    """What training and export read from OUT/stats.npz (see the module docstring)."""
    mean_image: np.ndarray
    covariance: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    num_images: int
    num_pixels: int

    @property
    def channel_mean(self):
        """Per-channel mean (3,): the mean image averaged over positions."""
        return self.mean_image.reshape(-1, 3).mean(axis=0)

    @property
    def channel_std(self):
        """Per-channel standard deviation (3,) of all pixels."""
        return np.sqrt(np.diag(self.covariance))

    def save(self, path):
        save(self, path)


class StatsAccumulator:
    """Exact running sums over uint8 RGB images; `merge` combines workers' partial sums.

    mean_size: side of the mean image. Every image added must be mean_size x
    mean_size, or a separate `mean_view` of that size must be given (used when
    the stored images keep their original sizes).
    """

    def __init__(self, mean_size):
        self.mean_size = int(mean_size)
        self.image_sum = np.zeros((self.mean_size, self.mean_size, 3), np.int64)
        self.pixel_sum = np.zeros(3, np.int64)
        self.outer_sum = np.zeros((3, 3), np.int64)
        self.num_images = 0
        self.num_pixels = 0

    def add(self, image, mean_view=None):
        """Adds one uint8 [H, W, 3] image (all its pixels go into the covariance)."""
        view = image if mean_view is None else mean_view
        if view.shape != self.image_sum.shape:
            raise ValueError(f"mean view shape {view.shape} != {self.image_sum.shape}")
        self.image_sum += view
        # [r g b 1]^T [r g b 1] gives the outer products, the channel sums and the pixel count
        # in one BLAS call; integer-valued float64 sums stay exact below 2**53.
        pixels = np.ones((image.shape[0] * image.shape[1], 4))
        pixels[:, :3] = image.reshape(-1, 3)
        moments = np.rint(pixels.T @ pixels).astype(np.int64)
        self.outer_sum += moments[:3, :3]
        self.pixel_sum += moments[:3, 3]
        self.num_images += 1
        self.num_pixels += int(moments[3, 3])

    def merge(self, other):
        if other.mean_size != self.mean_size:
            raise ValueError(f"cannot merge statistics of size {other.mean_size} into {self.mean_size}")
        self.image_sum += other.image_sum
        self.pixel_sum += other.pixel_sum
        self.outer_sum += other.outer_sum
        self.num_images += other.num_images
        self.num_pixels += other.num_pixels
        return self

    def to_arrays(self):
        """The raw sums, for a worker's partial file (np.savez)."""
        return dict(image_sum=self.image_sum, pixel_sum=self.pixel_sum, outer_sum=self.outer_sum,
                    num_images=np.int64(self.num_images), num_pixels=np.int64(self.num_pixels))

    @classmethod
    def from_arrays(cls, arrays):
        acc = cls(arrays["image_sum"].shape[0])
        acc.image_sum = np.asarray(arrays["image_sum"], np.int64).copy()
        acc.pixel_sum = np.asarray(arrays["pixel_sum"], np.int64).copy()
        acc.outer_sum = np.asarray(arrays["outer_sum"], np.int64).copy()
        acc.num_images = int(arrays["num_images"])
        acc.num_pixels = int(arrays["num_pixels"])
        return acc

    def finalize(self):
        """The DatasetStats of everything added so far."""
        if self.num_images == 0:
            raise ValueError("no training images: cannot compute statistics")
        mean_image = self.image_sum / self.num_images
        mean = self.pixel_sum / self.num_pixels
        covariance = self.outer_sum / self.num_pixels - np.outer(mean, mean)
        covariance = (covariance + covariance.T) / 2
        eigenvalues, eigenvectors = pca(covariance)
        return DatasetStats(mean_image, covariance, eigenvalues, eigenvectors,
                            self.num_images, self.num_pixels)


def pca(covariance):
    """Eigenvalues (descending) and eigenvectors (columns) of a symmetric 3x3 matrix.

    Each eigenvector's sign is fixed (largest component positive) so the file
    does not depend on the LAPACK build.
    """
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(3)])
    return values, vectors * np.where(signs == 0, 1, signs)


def save(stats, path):
    """Writes stats.npz atomically (temporary name, then rename)."""
    if os.path.isdir(path):
        path = os.path.join(path, layout.STATS_FILENAME)
    with layout.atomic_output(path) as tmp:
        np.savez(tmp, mean_image=stats.mean_image, covariance=stats.covariance,
                 eigenvalues=stats.eigenvalues, eigenvectors=stats.eigenvectors,
                 num_images=np.int64(stats.num_images), num_pixels=np.int64(stats.num_pixels))


def load_stats(path_or_dir):
    """DatasetStats from a stats.npz file or the folder holding it."""
    path = str(path_or_dir)
    if os.path.isdir(path):
        path = os.path.join(path, layout.STATS_FILENAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no statistics file; make_tfrecords writes it with "
                                "the training split")
    try:
        with np.load(path, allow_pickle=False) as f:
            return DatasetStats(
                mean_image=f["mean_image"].astype(np.float64),
                covariance=f["covariance"].astype(np.float64),
                eigenvalues=f["eigenvalues"].astype(np.float64),
                eigenvectors=f["eigenvectors"].astype(np.float64),
                num_images=int(f["num_images"]), num_pixels=int(f["num_pixels"]))
    except (ValueError, OSError, KeyError, EOFError, TypeError, zipfile.BadZipFile) as e:
        raise layout.DataFolderError(f"{path}: not the statistics make_tfrecords writes "
                                     f"({_why_unreadable(e)}); re-run bin/make_tfrecords for the "
                                     "training split into a new folder") from None


def _why_unreadable(error):
    if "allow_pickle" in str(error):  # NumPy suggests allow_pickle=True: never do that here
        return "it holds pickled Python objects, which are never loaded: they could run code"
    if isinstance(error, KeyError):
        return f"no array {error}"
    return f"{type(error).__name__}: {error}"
