"""The Editor's parts: p2p_real.editor.Editor keeps the public methods and their settings, these modules do the work.

edit_loop denoises rows [source, targets] under Prompt-to-Prompt control; photo_edit replays an inversion and
pastes the edits back onto the photo; synthetic generates from one shared start latent; inverting and
reconstruction wrap the inversion package; sweep runs one edit per combination of settings, batched; reblend
recomputes a result's masks at another threshold. They take the editor as an EditorLike (editor_like), so that
none of them imports p2p_real.editor.
"""
