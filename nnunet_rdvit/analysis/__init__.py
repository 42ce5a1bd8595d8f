"""``nnunet-rdvit analyze``: what a trained RD-ViT fold does with its loops, halting and experts.

One module per idea: :mod:`.cases` (labelled cases, preprocessed by nnU-Net), :mod:`.token_labels` (token label
histograms and boundary / interior / background categories), :mod:`.tokens` (one pass over the tiles),
:mod:`.depth`, :mod:`.halting`, :mod:`.experts`, :mod:`.dynamics`, :mod:`.figures` and :mod:`.report`.
"""
