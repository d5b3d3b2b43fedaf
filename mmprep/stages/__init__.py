"""Stage modules. Every module below this package is imported by :func:`mmprep.stage.discover`.

One package per modality; a module per stage (or a few closely related ones). Import heavy
libraries inside functions or in ``setup()`` so that listing stages stays fast.
"""

# stage name -> the module that registers it, so reading a pipeline imports only its stages' modules (a
# test keeps this in step with the registry; a stage missing here still works, after importing them all)
MODULES = {
    "align.av": "mmprep.stages.align.av",
    "align.subtitles": "mmprep.stages.align.subtitles",
    "audio.decode": "mmprep.stages.audio.basic",
    "audio.denoise": "mmprep.stages.audio.denoise",
    "audio.envelope": "mmprep.stages.audio.features",
    "audio.logmel": "mmprep.stages.audio.features",
    "audio.loudness": "mmprep.stages.audio.loudness",
    "audio.mfcc": "mmprep.stages.audio.features",
    "audio.normalize": "mmprep.stages.audio.basic",
    "audio.preemphasis": "mmprep.stages.audio.loudness",
    "audio.resample": "mmprep.stages.audio.resample",
    "audio.segment": "mmprep.stages.audio.segment",
    "audio.spectrogram": "mmprep.stages.audio.features",
    "audio.trim": "mmprep.stages.audio.segment",
    "audio.vad": "mmprep.stages.audio.vad",
    "audio.zcr": "mmprep.stages.audio.features",
    "debug.trace": "mmprep.stages.debug",
    "embed": "mmprep.stages.embed.stage",
    "fetch": "mmprep.stages.fetch.http",
    "image.augment": "mmprep.stages.image.augment",
    "image.decode": "mmprep.stages.image.decode",
    "image.denoise": "mmprep.stages.image.filters",
    "image.encode": "mmprep.stages.image.encode",
    "image.enhance": "mmprep.stages.image.filters",
    "image.face_crop": "mmprep.stages.image.face",
    "image.normalize": "mmprep.stages.image.normalize",
    "image.resize": "mmprep.stages.image.resize",
    "subtitle.decode": "mmprep.stages.subtitle.decode",
    "text.decode": "mmprep.stages.text.basic",
    "text.ids": "mmprep.stages.text.vocab",
    "text.language": "mmprep.stages.text.language",
    "text.normalize": "mmprep.stages.text.basic",
    "text.sentences": "mmprep.stages.text.sentences",
    "text.stopwords": "mmprep.stages.text.stopwords",
    "text.tokenize": "mmprep.stages.text.tokenize",
    "text.vocab": "mmprep.stages.text.vocab",
    "video.audio_track": "mmprep.stages.video.audio_track",
    "video.clips": "mmprep.stages.video.clips",
    "video.decode": "mmprep.stages.video.probe",
    "video.frames": "mmprep.stages.video.frames",
    "video.probe": "mmprep.stages.video.probe",
}
