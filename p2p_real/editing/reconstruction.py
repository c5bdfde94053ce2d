"""Editor.reconstruct's work: a photo sampled back from its inversion, measured against the photo."""

from __future__ import annotations

import torch

from inversion.artifact import Inversion
from inversion.metrics import latent_error, psnr, ssim
from inversion.photos.image import load_image
from p2p_real.core.sampling import sample
from p2p_real.editing.editor_like import EditorLike
from p2p_real.editing.photo_edit import replay
from p2p_real.files.results import Reconstruction, inversion_parameters, to_output


def reconstruct_photo(editor: EditorLike, inv: Inversion, progress: bool) -> Reconstruction:
    """The reconstruction of `inv` (and, for a pivot-following inversion, the drift its pivots correct)."""
    start, uncond, pivots = replay(editor, inv)
    editor.scheduler.set_timesteps(inv.num_inference_steps, device=editor.device)
    cond = editor.embed([inv.prompt])
    # plain DDIM from the start: the reconstruction, or for a pivot-following inversion the drift its pivots
    # correct (its source row is set onto them after every step, so it ends on the last one)
    desc = "reconstructing" if pivots is None else "drift without the pivots"
    plain = sample(
        editor.denoiser, editor.scheduler, start, cond, uncond, inv.guidance_scale, progress=progress, desc=desc
    )
    latents = plain if pivots is None else pivots[-1].clone()
    rows = [latents, inv.z0.to(editor.device, editor.dtype), *([] if pivots is None else [plain])]
    photo = load_image(inv.original, size=inv.size, multiple=1).pixels  # the photo as the model saw it
    decoded = editor.decode(torch.cat(rows))
    image, vae_image, *drift_image = to_output(decoded, "pil")
    (photo_pil,) = to_output(photo, "pil")
    return Reconstruction(
        image=image,
        photo=photo_pil,
        vae_image=vae_image,
        psnr=psnr(decoded[0], photo[0]),
        ssim=ssim(decoded[0], photo[0]),
        latent_error=latent_error(latents, inv.z0),
        vae_psnr=psnr(decoded[1], photo[0]),
        vae_ssim=ssim(decoded[1], photo[0]),
        method=inv.method,
        drift_image=drift_image[0] if drift_image else None,
        drift_psnr=psnr(decoded[2], photo[0]) if drift_image else None,
        parameters={"command": "reconstruct", **inversion_parameters(inv), **editor.model_parameters()},
    )
