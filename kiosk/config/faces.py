"""Settings of face recognition (detector, embedder, thresholds), expression analysis and enrolment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from kiosk.config.base import Section


class FaceQualitySettings(Section):
    """Which faces are good enough to identify: size (px), sharpness and head turn."""

    # Faces smaller than this (box height in pixels) are ignored: too far away to trust.
    min_face_px: int = Field(80, ge=20, le=2000)
    # Variance of the Laplacian on the grey face crop resized to 128x128; below this the face
    # is too blurred. LFW photos (soft, upscaled JPEGs) have a median of ~39 and 1% below 10;
    # a Gaussian blur of sigma 2 on them gives ~17. Higher rejects more soft frames (fewer
    # mistakes, more retries at the door); 20 would turn away 11% of the LFW photos.
    min_sharpness: float = Field(10.0, ge=0.0)
    # Largest head turn accepted, estimated from landmarks as |nose offset| / eye distance.
    # Lower demands a more frontal face (better matches, more "please look at the camera").
    # 99.5% of LFW faces are below 0.35.
    max_yaw_ratio: float = Field(0.35, ge=0.0, le=2.0)


# The LiteRT twin of dlib's face embedder shipped in models/ (see models/EMBEDDER.md).
SHIPPED_EMBEDDER = "face_embedder_f16.tflite"


class RecognitionSettings(Section):
    """Finding faces and telling people apart: detector, embedder and match thresholds (distances)."""

    # Detector: "yunet" (OpenCV's YuNet CNN, models/yunet/; also the door's presence check;
    # its boxes are mapped onto HOG's so the dlib landmarks and embedding see the same crop),
    # "hog" (dlib HOG) or "cnn" (dlib CNN, slow without CUDA). On the 4,600 photos of
    # ../shared/data (people + 2,491 strangers) YuNet leaves 1.5% without a usable face, HOG
    # 2.9% (YuNet found no face at all in 2 photos; HOG in 48 of the 3,292 it ran on), and
    # detects in ~8 ms instead of ~44 ms (x86 core, 350x350 photo); with the
    # rule re-tuned for each on half A, YuNet misses 10.1% of half B's probes (HOG 10.3%) and
    # accepts 0.49% of its 1,224 strangers (HOG 0.57%). Templates enrolled with one detector
    # match faces found by the other (same photo: median embedding distance 0.02).
    detector: Literal["hog", "yunet", "cnn"] = "yunet"
    # YuNet: faces scoring below this are ignored. Lower finds more faces that are dim, turned
    # or partly hidden, and more false faces in the background.
    yunet_score: float = Field(0.6, ge=0.0, le=1.0)
    # YuNet as the door's presence check: every frame is shrunk to this width first
    # (attendance.presence_width is HOG's). YuNet finds faces of ~15 px, so at 320 px a face of
    # recognition.quality.min_face_px (80) in a 640 px frame is still 40 px, and a face filling the
    # frame stays within YuNet's range. Smaller is faster: on the bench's door frames 320 px took
    # 4.6 ms against 8.3 ms at 400 px (YuNet pads to multiples of 32: 416x320 vs 320x256), found
    # the same faces, and its boxes gave embeddings as close to a full-resolution box's as 400's
    # (median 0.029 vs 0.028); 256 px missed 2 of 100 arriving faces. Larger finds faces further away.
    yunet_presence_width: int = Field(320, ge=80, le=4096)
    # YuNet ONNX file; empty means the one shipped in models/yunet/.
    yunet_model: Path | None = None
    # Check the YuNet model's SHA-256 against the .sha256 file beside it before loading.
    yunet_verify_checksum: bool = True
    # HOG and cnn only: times the detector upsamples the image; 1 finds smaller faces at ~4x the cost. When it
    # finds nothing, the image is searched once more without upsampling (finds a third of
    # the large faces the upsampled search misses on LFW, at a quarter of its cost).
    upsample: int = Field(1, ge=0, le=3)
    # When nothing is found, search once more (no upsampling) on a copy with a black border
    # of this fraction of the longer side: HOG needs some background around a face, so faces
    # that fill the frame or touch its edge (someone very close to the camera, tightly cropped
    # enrolment photos) are otherwise missed. 0 turns it off. On ../shared/data/faces 0.25 finds
    # 26 of the 49 faces missed without it (0.5% of photos); costs ~0.65x an upsampled search,
    # only on images where nothing was found (the door pipeline's frames have a presence box).
    edge_pad: float = Field(0.25, ge=0.0, le=1.0)
    # Random re-samplings averaged per embedding; more is steadier and linearly slower.
    num_jitters: int = Field(1, ge=1, le=100)
    # Landmarks used to align the face before embedding: "small" (5 points, what
    # face_recognition uses by default) or "large" (68 points; slightly worse on LFW).
    landmark_model: Literal["small", "large"] = "small"
    # Also embed the mirrored face and average the two embeddings (test-time augmentation),
    # for every photo and camera frame. Same-person distances shrink more than
    # different-person ones: on held-out half B of ../shared/data/faces it cuts misses from
    # 12.8% to 8.7% at the same max_distance/max_ratio and stranger acceptance (0.7%).
    # Costs a second landmark + embedding pass: describe() ~1.9x, a whole photo ~1.6x
    # (+80 ms per face on a busy x86 core; the detection is shared).
    # Templates enrolled without it still match (on half A plain templates with mirrored
    # probes miss 8.5%, mirrored ones 7.3%); re-enrol for the full gain. Each template records
    # how it was made; the service log and the admin status page list whom to re-enrol.
    mirror_tta: bool = True
    # How a person's templates are compared with a face: "mean" (their average, one row per
    # person; on LFW 3-4 points fewer misses than "min" at the same stranger acceptance)
    # or "min" (nearest single template).
    template_aggregation: Literal["mean", "min"] = "mean"
    # How a face is compared with the templates; every distance below (and the door's
    # attendance.single_frame_*distance) is measured in this space. "wccn": both embeddings
    # are scaled to length 1, multiplied by the within-class covariance normalisation matrix
    # (comparison_model; learned from the 295 people of ../shared/data/faces, see the
    # README) and scaled to length sqrt(2), about dlib's own, so distances keep roughly
    # face_recognition's scale. "length": the same without the matrix. "raw": dlib's
    # embeddings as they are (the rule before; it needs max_ratio 0.9). Templates are stored
    # raw either way, so switching needs no re-enrolment. Each tuned the same way on half A,
    # half B missed 7.9% (wccn), 8.8% (length) and 10.3% (raw) of probes.
    comparison: Literal["wccn", "length", "raw"] = "wccn"
    # The WCCN matrix (.npy, 128x128 float32); empty means models/face_wccn.npy.
    comparison_model: Path | None = None
    # Check the WCCN matrix's SHA-256 against the .sha256 file beside it before loading.
    comparison_verify_checksum: bool = True
    # Accept a match only when the best distance is at most this: the outer bound of the
    # normalised rule below (and the whole distance rule when max_normalised_distance is empty).
    # Lower: fewer strangers accepted, more enrolled people missed. With one person enrolled it
    # is the only test. 0.44 was tuned with the normalised rule (see max_normalised_distance);
    # the ratio rule before it used 0.435 with max_ratio 0.85.
    max_distance: float = Field(0.44, ge=0.0, le=2.0)
    # Normalised distance (score normalisation against the site's own gallery): a match is
    # accepted only when
    #   distance - cohort_weight * (mean distance to the next cohort_size people)
    #            - isolation_weight * (the candidate's distance to their nearest other enrolled person)
    #   <= max_normalised_distance + gallery_size_slope * ln(min(people, 295) / 295)
    # so a face about as near to several people (a look-alike, a poor photo) is refused, a person
    # whose nearest colleague is far gets some leeway, and a smaller gallery (whose cohort is
    # farther away) gets a stricter threshold. Lower: fewer strangers, more misses. Tuned on half A
    # of ../shared/data/faces + faces-extra-strangers only (WCCN matrix from half A's people),
    # for <= 0.7% strangers with 295 and with 139 people enrolled and on average over random
    # galleries of 10, 30 and 80 (0.7, not 1%: the winner's curse of tuning; see the README).
    # Held-out half B (with max_ratio 0.95): 0.74% strangers (95% CI 0.39-1.39), nobody taken for
    # someone else, 8.8% missed with 295 people enrolled; 0.33% / 0% / 8.5% with 156 (the ratio
    # rule: 0.82% / 0% / 11.3% and 0.74% / 0% / 8.8%). Empty turns it off (distance and ratio only).
    max_normalised_distance: float | None = Field(0.1175, ge=-2.0, le=2.0)
    # How many next-nearest people make the cohort of the normalised distance (fewer when
    # fewer are enrolled; with one person enrolled only max_distance applies).
    cohort_size: int = Field(5, ge=1, le=100)
    # Weight of the cohort's mean distance in the normalised distance (0: not used).
    cohort_weight: float = Field(0.4, ge=0.0, le=1.0)
    # Weight of the candidate's distance to their nearest other enrolled person (0: not used).
    isolation_weight: float = Field(0.2, ge=0.0, le=1.0)
    # Threshold change per unit of ln(people enrolled / 295), for galleries up to 295 people (the
    # size it was tuned at; larger galleries keep the 295 threshold, their denser cohort already
    # makes the rule stricter). 0.01: 3 people enrolled -> threshold 0.046 lower.
    gallery_size_slope: float = Field(0.01, ge=0.0, le=0.2)
    # The best distance divided by the second-best person's must be at most this (1 turns the
    # check off). With the normalised distance it only guards near-ties: two people about equally
    # near the face (twins, one person enrolled twice with --force) give "unknown", not a guess.
    # 0.95: on half A (the tuning half) it costs no misses at 295 or 139 people enrolled (0.92
    # costs one) and refuses one more stranger; held-out half B at 295 people 0.74% strangers
    # (9 of 1,224), 0% wrong, 8.8% missed. Lower: fewer look-alikes accepted, more misses. The
    # ratio rule before the normalised one: max_distance 0.435 and max_ratio 0.85 (tuned at 295
    # people; held-out half B 0.82% / 0% / 11.3%). Raw comparison (comparison: raw) was tuned with 0.9.
    max_ratio: float = Field(0.95, ge=0.0, le=1.0)
    # The best person must beat the second-best person by this much distance (0: off).
    # Higher: fewer people taken for a look-alike colleague, more misses.
    min_margin: float = Field(0.0, ge=0.0, le=2.0)
    # Cohort (z-score) normalisation against the site's own gallery: accept only when
    # (best distance - mean distance to the other enrolled people) / their standard deviation
    # is at most this (a negative number; lower is stricter). A face that is about as near to
    # everybody (a "generic" face, or a poor photo) is rejected even inside max_distance.
    # Needs 4+ enrolled people; empty turns it off. Off by default: tuned on half A it did not
    # beat plain max_distance + max_ratio on half B (at <= 1% strangers it missed 13% instead
    # of 10%); neither did per-person impostor z-scores or thresholds widened for people with
    # spread-out templates.
    max_cohort_z: float | None = Field(None, ge=-20.0, le=0.0)
    # Enrolment refuses a face within this distance of another person (unless --force).
    duplicate_distance: float = Field(0.45, ge=0.0, le=2.0)
    quality: FaceQualitySettings = FaceQualitySettings()
    # Which net turns the aligned face chip into its 128-d embedding: "dlib" (dlib's ResNet,
    # as face_recognition runs it) or "litert" (the same net converted to a float16 .tflite,
    # run by LiteRT: embeddings within 0.01 of dlib's, see models/EMBEDDER.md for the measured
    # differences and speed; about 10x faster per face). Templates record which one made them;
    # dlib's and the shipped twin's compare with each other, so switching between the two needs
    # no re-enrolment (another .tflite does: the status page lists whom). litert needs
    # num_jitters 1.
    embedder: Literal["dlib", "litert"] = "litert"
    # The litert embedder's .tflite; empty means the model shipped with the package.
    embedder_model: Path | None = None
    # Check the litert model's SHA-256 against the .sha256 file beside it before loading.
    embedder_verify_checksum: bool = True
    # CPU threads the litert embedder may use for one face (XNNPACK). 2 halves a check-in's
    # embedding time on a 4-core Pi or a 2-core PC (15 -> 8 ms here for a face and its mirror),
    # the same embeddings; 1 leaves the other cores wholly to the web app and the camera.
    embedder_threads: int = Field(2, ge=1, le=8)

    @model_validator(mode="after")
    def _litert_without_jitter(self) -> RecognitionSettings:
        if self.embedder == "litert" and self.num_jitters != 1:
            raise ValueError("num_jitters above 1 needs recognition.embedder: dlib "
                             "(the litert embedder does not port dlib's random jitter)")
        return self

    def embedder_id(self, embedder: str | None = None) -> str:
        """How embeddings are made under these settings (stored with each template)."""
        mirror = "on" if self.mirror_tta else "off"
        net = "dlib-resnet-v1"
        if (embedder or self.embedder) == "litert":
            model = Path(self.embedder_model).name if self.embedder_model else SHIPPED_EMBEDDER
            net = f"dlib-resnet-v1-litert:{model}"
        return f"{net} landmarks={self.landmark_model} mirror={mirror} jitters={self.num_jitters}"

    def for_enrolment_server(self) -> RecognitionSettings:
        """These settings as the web app enrols with them: the shipped LiteRT twin gives way to
        dlib's own embedder (the same templates, compatible_embedder_ids; dlib's ResNet costs
        ~25 MB of memory beside the landmark models, LiteRT's interpreter ~48 MB, and the web app
        must stay within 300 MB while it enrols on a 2 GB Pi). Other settings are kept."""
        if self.embedder == "litert" and len(self.compatible_embedder_ids()) > 1:
            return self.model_copy(update={"embedder": "dlib"})
        return self

    def compatible_embedder_ids(self) -> tuple[str, ...]:
        """Embedder ids whose templates compare with this one's: dlib and the shipped LiteRT twin
        of its network (within 0.001 of dlib's embeddings, models/EMBEDDER.md) are one; another
        .tflite is only itself. Templates made otherwise are listed for re-enrolment."""
        if self.embedder_model is not None or self.num_jitters != 1:
            return (self.embedder_id(),)
        return (self.embedder_id("dlib"), self.embedder_id("litert"))


class ExpressionSettings(Section):
    """The optional expression classifier (off by default: emotion inference at work is banned in the EU)."""

    # Emotion inference at work is banned in the EU (AI Act Art. 5(1)(f)). Off unless a site
    # turns it on (lawful by default). When false the model is never loaded and no expression
    # data is computed or stored anywhere.
    enabled: bool = False
    # int8 TFLite model; empty means the model shipped with the package.
    model: Path | None = None
    # Check its SHA-256 against the .sha256 file beside it before loading.
    verify_checksum: bool = True
    # Also classify the mirrored face and average the two score vectors: a steadier label for
    # a second model invoke (about 1 ms here). Chosen on the validation split; see models/README.md.
    mirror_tta: bool = True




class EnrolmentSettings(Section):
    """How many photos an enrolment needs, their size (px) and the kiosk camera's timing (s)."""

    # Enrolment at the kiosk: an admin asks (web app or `kiosk enroll --at-kiosk`), the person
    # stands at the door and the kiosk's own camera takes the photos.
    # Least photos with a usable face an enrolment needs (photo files, web upload and kiosk
    # camera alike). More give the gallery more poses and let the consistency check spot a
    # photo of somebody else by majority; fewer make enrolment quicker but one odd photo
    # weighs more (with 2, a mismatch only says that one of them is wrong).
    min_photos: int = Field(3, ge=1, le=20)
    # Photos are scaled down (aspect kept) to at most this many pixels on the longer side
    # before faces are looked for. Larger finds smaller faces (a person alone is still a
    # face of 150 px or more at 800; the embedding uses a 150 px face chip); smaller is
    # quicker and needs less memory, as detection grows with the pixel count. `kiosk enroll`
    # of eight 3600 px photos here: 8 s and 266 MB peak at 800, 10 s and 294 MB at 1024,
    # 368 MB at 1600 (a Pi takes several times as long).
    max_photo_side: int = Field(800, ge=320, le=4096)
    # Photos taken at the kiosk (at least min_photos). More cover more of the small pose
    # changes at the door; fewer are quicker.
    capture_photos: int = Field(5, ge=1, le=20)
    # Least seconds between two photos taken, so they differ a little (pose, expression).
    capture_interval_s: float = Field(0.5, ge=0.0, le=10.0)
    # A request is dropped when the photos are not taken within this many seconds of asking.
    capture_timeout_s: float = Field(120.0, ge=10.0, le=3600.0)

    @model_validator(mode="after")
    def _enough_capture_photos(self) -> EnrolmentSettings:
        if self.capture_photos < self.min_photos:
            raise ValueError(f"enrolment.capture_photos ({self.capture_photos}) must be at least "
                             f"enrolment.min_photos ({self.min_photos})")
        return self
