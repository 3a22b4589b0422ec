"""The saliency-guided variable-rate ROI codec (seed 002: "ROI Image codec Optimized for Visual Quality").

Modules (runtime first; the runtime never imports :mod:`.train`):

* :mod:`.gmm` — Gaussian-mixture entropy model and its rANS tables,
* :mod:`.model` — :class:`~.model.RoiNetwork` (the network, gain units, coding loops) and the discriminator,
* :mod:`.saliency` — saliency providers, Mask_2D / RM_2D / RM_latent,
* :mod:`.config` — defaults and YAML configs, :mod:`.checkpoint` — save/read/load,
* :mod:`.codec` — :class:`~.codec.RoiCodec` (compress/decompress/estimate), file functions, evaluation,
* :mod:`.provider` — the ``codecs match`` condition, :mod:`.cli` — ``lossarena roi``,
* :mod:`.losses`, :mod:`.train` — training (stage 1 rate–distortion, stage 2 conditional GAN).

See docs/roi.md.
"""
