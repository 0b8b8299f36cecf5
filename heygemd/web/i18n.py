"""The page's words in English and Simplified Chinese, and the choice between them.

Every word the page shows comes from MESSAGES (the service's own sentences, which name files, are
shown as they are, marked as English). The plain summary and the fix of each error code come from
heygemd.codes in English and from CODE_TEXTS_ZH here; the codes themselves never change.

The language: ``?lang=`` (remembered in a cookie), else the cookie, else the browser's
Accept-Language (by its q-values), else English. Any Chinese except the traditional-script
variants (zh-TW, zh-HK, zh-MO, zh-Hant) gets Simplified Chinese.
"""

from __future__ import annotations

import re
import string

from heygemd.codes import ErrorCode

EN = "en"
ZH = "zh-CN"
LANGUAGES: tuple[tuple[str, str], ...] = ((EN, "English"), (ZH, "简体中文"))
LANGUAGE_CODES = tuple(code for code, _ in LANGUAGES)
LANG_COOKIE = "heygemd_lang"
LANG_PARAM = "lang"
_TRADITIONAL = ("zh-tw", "zh-hk", "zh-mo", "zh-hant")


def normalise(tag: str | None) -> str | None:
    """One of LANGUAGE_CODES for a language tag, or None if neither fits."""
    if not tag:
        return None
    lowered = tag.strip().lower().replace("_", "-")
    if lowered == "en" or lowered.startswith("en-"):
        return EN
    if (lowered == "zh" or lowered.startswith("zh-")) and not lowered.startswith(_TRADITIONAL):
        return ZH
    return None


def from_accept_language(header: str | None) -> str | None:
    """The preferred supported language of an Accept-Language header."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        match = re.search(r"q\s*=\s*([0-9.]+)", params)
        if match:
            try:
                quality = float(match.group(1))
            except ValueError:
                quality = 0.0
        language = normalise(tag)
        if language is not None and quality > 0:
            choices.append((-quality, position, language))
    return min(choices)[2] if choices else None


def choose_language(param: str | None, cookie: str | None, accept_language: str | None) -> str:
    return normalise(param) or normalise(cookie) or from_accept_language(accept_language) or EN


# Each key: (English, Simplified Chinese). Placeholders in {braces} are filled in by name.
MESSAGES: dict[str, tuple[str, str]] = {
    "app.title": ("Lip-sync jobs", "口型同步任务"),
    "ui.colon": (": ", "："),
    "nav.dashboard": ("Dashboard", "总览"),
    "nav.upload": ("New job", "新建任务"),
    "nav.presenters": ("Presenters", "数字人形象"),
    "nav.results": ("Results", "结果"),
    "nav.api": ("API", "API 文档"),
    "results.title": ("Results", "结果"),
    "results.search": ("Search by name", "按名称搜索"),
    "results.search_button": ("Search", "搜索"),
    "results.found": ("{total} found", "找到 {total} 个"),
    "results.none": ("No result is there yet.", "还没有结果。"),
    "results.none_found": ('No result\'s name holds "{query}".', "没有名称包含“{query}”的结果。"),
    "results.page": ("Page {page} of {pages}", "第 {page} / {pages} 页"),
    "results.newer": ("Newer", "较新"),
    "results.older": ("Older", "较早"),
    "results.all": ("All results", "全部结果"),
    "results.play": ("Play", "播放"),
    "results.videos_more": ("{count} videos: see the job", "共 {count} 个视频：查看任务"),
    "control.delete": ("Delete", "删除"),
    "control.rerun": ("Run again", "重新运行"),
    "error.inputs_gone": (
        "The inputs of “{name}” are no longer there (a job done in full keeps them only in the archive).",
        "“{name}”的输入文件已不在（完整完成的任务只在归档中保留输入）。",
    ),
    "control.delete_confirm": (
        "Delete this job's results for good? Its results and quarantine folders are removed.",
        "要永久删除这个任务的结果吗？它的结果文件夹和隔离文件夹都会被删除。",
    ),
    "job.progress": ("{done} of {total} videos", "第 {done} / {total} 个视频"),
    "nav.sign_out": ("Sign out", "退出登录"),
    "apidocs.title": ("API", "API 文档"),
    "apidocs.intro": (
        "Every action of this page, as a JSON API. Try a call below; the description itself:",
        "本页面的所有操作都可以通过 JSON API 完成。可以在下面试着调用；接口描述文件：",
    ),
    "login.title": ("Sign in", "登录"),
    "login.token": ("Password", "密码"),
    "login.submit": ("Sign in", "登录"),
    "login.wrong": ("That password is not right.", "密码不正确。"),
    "dashboard.title": ("Dashboard", "总览"),
    "dashboard.services": ("Services", "服务"),
    "dashboard.no_services": ("No service has run with these state folders yet.", "还没有服务使用过这些状态文件夹。"),
    "dashboard.queue": ("Queue", "队列"),
    "dashboard.no_service_running": (
        "No service is running: new jobs wait in the inbox until one starts (heygemd run, or systemctl start heygemd).",
        "没有正在运行的服务：新任务会留在收件文件夹，直到有服务启动（heygemd run 或 systemctl start heygemd）。",
    ),
    "dashboard.queue_empty": ("Nothing is waiting.", "没有等待中的任务。"),
    "dashboard.results": ("Latest results", "最新结果"),
    "dashboard.no_results": ("No job has finished yet.", "还没有完成的任务。"),
    "control.pause": ("Pause new jobs", "暂停接收新任务"),
    "control.resume": ("Resume", "恢复"),
    "control.cancel": ("Cancel", "取消"),
    "control.cancel_confirm": (
        "Cancel this job? Its files go to quarantine untouched.",
        "要取消这个任务吗？它的文件会原样移到隔离区。",
    ),
    "control.paused_notice": (
        "Paused: no new job is started; the current one finishes.",
        "已暂停：不再开始新任务，当前任务会做完。",
    ),
    "control.resumed_notice": ("Resumed: new jobs are taken again.", "已恢复：重新开始接收新任务。"),
    "control.cancel_notice": ("Cancelling: the job ends in quarantine.", "正在取消：任务会被移到隔离区。"),
    "service.paused": ("paused", "已暂停"),
    "service.dry_run": ("dry run (no model)", "试运行（不用模型）"),
    "service.device": ("Device", "设备"),
    "service.host": ("Host", "主机"),
    "service.current": ("Rendering", "正在渲染"),
    "task.video": ("Video", "视频"),
    "task.worker": ("Worker", "渲染节点"),
    "task.progress": ("Progress", "进度"),
    "task.queued": ("waiting for a worker", "等待渲染节点"),
    "state.no_worker_online": ("no worker online", "没有在线的渲染节点"),
    "workers.title": ("Workers", "渲染节点"),
    "workers.none": (
        "No worker online: jobs wait. Start `heygemd worker` on a GPU host.",
        "没有在线的渲染节点：任务在等待。请在 GPU 主机上启动 `heygemd worker`。",
    ),
    "workers.online": ("online", "在线"),
    "workers.lost": ("lost", "失联"),
    "workers.idle": ("idle", "空闲"),
    "workers.gpu": ("GPU", "GPU"),
    "workers.model": ("Model", "模型"),
    "workers.task": ("Task", "当前任务"),
    "workers.heartbeat": ("Last heartbeat", "最近心跳"),
    "workers.frames": ("{done}/{total} frames", "{done}/{total} 帧"),
    "workers.fps": ("{fps} fps", "{fps} 帧/秒"),
    "workers.left": ("{time} left", "剩余 {time}"),
    "service.no_current": ("No job is rendering.", "没有正在渲染的任务。"),
    "state.starting": ("starting", "正在启动"),
    "state.loading_model": ("loading the model", "正在加载模型"),
    "state.waiting_for_the_model_files": ("waiting for the model files", "等待模型文件"),
    "state.idle": ("ready", "就绪"),
    "state.working": ("rendering", "正在渲染"),
    "state.paused": ("paused", "已暂停"),
    "state.waiting_for_the_inbox": ("waiting for the inbox", "等待收件文件夹"),
    "state.waiting_for_disk_space": ("waiting for disk space", "等待磁盘空间"),
    "state.stopping": ("stopping", "正在停止"),
    "state.stopped": ("not running", "未运行"),
    "phase.arriving": ("arriving", "正在接收"),
    "phase.queued": ("queued", "排队中"),
    "phase.waiting_for_disk": ("waiting for disk space", "等待磁盘空间"),
    "phase.claimed": ("claimed", "已领取"),
    "phase.rendering": ("rendering", "正在渲染"),
    "phase.waiting_retry": ("waiting to retry", "等待重试"),
    "phase.publishing": ("publishing", "正在发布"),
    "phase.done": ("done", "已完成"),
    "status.ok": ("done", "已完成"),
    "status.partial": ("partly done", "部分完成"),
    "status.failed": ("failed", "失败"),
    "status.cancelled": ("cancelled", "已取消"),
    "video.pending": ("waiting", "等待中"),
    "video.rendering": ("rendering", "正在渲染"),
    "video.ok": ("done", "已完成"),
    "video.failed": ("failed", "失败"),
    "stage.detect": ("finding the face", "正在识别人脸"),
    "stage.render": ("rendering", "正在渲染"),
    "stage.restore": ("restoring faces", "正在修复面部"),
    "stage.speech": ("speaking the script", "正在朗读文稿"),
    "progress.frames": ("{done} of {total} frames", "第 {done} / {total} 帧"),
    "progress.fps": ("{fps} frames/s", "每秒 {fps} 帧"),
    "progress.eta": ("{time} left", "剩余 {time}"),
    "duration.hours": ("{h} h {m} min", "{h} 小时 {m} 分"),
    "duration.minutes": ("{m} min {s} s", "{m} 分 {s} 秒"),
    "duration.seconds": ("{s} s", "{s} 秒"),
    "result.videos": ("{ok} done, {failed} failed", "完成 {ok} 个，失败 {failed} 个"),
    "job.name": ("Job", "任务"),
    "job.phase": ("State", "状态"),
    "job.waiting_for": ("Waiting for", "正在等待"),
    "job.cancel_requested": ("cancelling", "正在取消"),
    "job.retry": ("Failed {failures} of {max} times; it will be tried again", "已失败 {failures} / {max} 次，稍后会重试"),
    "job.retry_at": ("next try at {time}", "下次尝试：{time}"),
    "job.what_to_do": ("What to do", "怎么办"),
    "job.service_says": ("The service says", "服务的说明"),
    "job.download_zip": ("Download all (ZIP)", "全部下载（ZIP）"),
    "job.download_mp4": ("Download MP4", "下载 MP4"),
    "job.download_json": ("Report (JSON)", "报告（JSON）"),
    "job.service": ("Service", "服务"),
    "job.received_at": ("Received", "接收时间"),
    "job.finished_at": ("Finished", "完成时间"),
    "job.no_service": (
        "No service is running: this job waits in the inbox until one starts.",
        "没有正在运行的服务：这个任务会留在收件文件夹，直到有服务启动。",
    ),
    "job.queued_paused": (
        "The service is paused: this job starts when it is resumed.",
        "服务已暂停：恢复后才会开始这个任务。",
    ),
    "job.gone": (
        "This job's results are no longer there (removed after the retention period, or moved).",
        "这个任务的结果已经不在了（超过保留期限被删除，或被移走）。",
    ),
    "job.videos": ("Videos", "视频"),
    "job.no_videos": ("No video yet.", "还没有视频。"),
    "job.no_videos_made": ("No video was made.", "没有生成视频。"),
    "job.audio": ("Audio", "音频"),
    "job.thumbnail": ("thumbnail", "缩略图"),
    "job.before": ("Template", "模板"),
    "job.after": ("Result", "结果"),
    "job.template_gone": (
        "Template no longer available (its archive or presenter was removed).",
        "模板已不在（它的归档或数字人已被删除）。",
    ),
    "job.warnings": ("Notes", "提示"),
    "job.files": ("Files", "文件"),
    "area.outbox": ("results", "结果"),
    "area.quarantine": ("quarantine", "隔离区"),
    "warning.faceless": (
        "{video}: no face was found in {count} of {total} frames; they are shown unchanged.",
        "{video}：{total} 帧中有 {count} 帧没有找到人脸，这些帧保持原样。",
    ),
    "warning.loop": (
        "{video}: the audio is longer than the template, so the template was extended ({policy}).",
        "{video}：音频比模板视频长，模板视频已被延长（{policy}）。",
    ),
    "warning.vfr": (
        "{video}: the template has a variable frame rate; it was rendered at a constant {fps} frames/s.",
        "{video}：模板视频的帧率不固定，已按固定的每秒 {fps} 帧渲染。",
    ),
    "loop.pingpong": ("back and forth", "往返播放"),
    "loop.loop": ("from the start again", "从头循环"),
    "loop.freeze": ("hold the last frame", "停在最后一帧"),
    "blend.feather": ("soft edge", "柔和边缘"),
    "blend.hard": ("hard edge (box)", "硬边缘（方框）"),
    "upload.title": ("New job", "新建任务"),
    "upload.intro": (
        "Audio files (or a typed script) and template videos or images (or presenters of the library) make one job. "
        "Each template gets the presenter's mouth re-synced to each audio.",
        "音频文件（或输入的文稿）加上模板视频或图片（或形象库中的数字人）组成一个任务。"
        "每个模板里的口型都会与每段音频重新同步。",
    ),
    "upload.name": ("Job name (optional)", "任务名称（可不填）"),
    "upload.name_hint": ("the audio file's name", "默认使用音频文件名"),
    "upload.audio": ("Audio", "音频"),
    "upload.templates": ("Template videos or images", "模板视频或图片"),
    "upload.limits": ("Each file up to {size}; up to {count} templates.", "每个文件不超过 {size}；最多 {count} 个模板。"),
    "upload.no_limit": ("no limit", "不限"),
    "upload.options": ("Options", "选项"),
    "upload.default": ("as configured", "使用默认设置"),
    "upload.loop": ("When the audio is longer than a template", "音频比模板视频长时"),
    "upload.blend": ("Mouth area edge", "嘴部区域边缘"),
    "upload.crf": ("Quality (CRF, lower is better)", "画质（CRF，越小越好）"),
    "upload.output_folder": ("Results folder name", "结果文件夹名称"),
    "upload.job_toml": ("Or a whole job.toml", "或者填写完整的 job.toml"),
    "upload.submit": ("Start", "开始"),
    "upload.uploading": ("Uploading… {percent}%", "正在上传… {percent}%"),
    "upload.client_file_too_large": ('"{name}" is larger than {size}.', "“{name}”超过了 {size}。"),
    "upload.client_too_many": ("At most {count} templates.", "最多 {count} 个模板。"),
    "upload.failed": ("The upload failed: {error}", "上传失败：{error}"),
    "upload.drop": ("Drop the audio and the template videos here", "把音频和模板视频拖到这里"),
    "upload.drop_hint": (
        "Audio files go to the audio, everything else to the templates; or choose them below.",
        "音频文件归入音频，其余文件归入模板；也可以在下面选择文件。",
    ),
    "upload.kind_audio": ("audio", "音频"),
    "upload.kind_template": ("template", "模板"),
    "upload.remove": ("Remove", "移除"),
    "upload.unreadable_here": (
        "this browser cannot play it (the service checks it when it is sent)",
        "浏览器无法播放（发送后由服务检查）",
    ),
    "upload.presenters": ("Presenters from the library", "形象库中的数字人"),
    "upload.no_presenters": ("The presenter library is empty.", "形象库还是空的。"),
    "upload.script": ("Or type a script", "或者输入文稿"),
    "upload.script_hint": (
        "Spoken with the voice below instead of an audio file (leave the audio empty).",
        "用下面的声音朗读，代替音频文件（此时不要选择音频）。",
    ),
    "upload.voice": ("Voice", "声音"),
    "upload.language": ("Language (en, zh, … or auto)", "语言（en、zh……或 auto）"),
    "upload.speed": ("Speed (1.0: natural)", "语速（1.0 为正常）"),
    "upload.preview": ("Listen to the start", "试听开头"),
    "upload.previewing": ("Speaking…", "正在合成…"),
    "upload.preview_failed": ("The preview failed: {error}", "试听失败：{error}"),
    "presenters.title": ("Presenters", "数字人形象"),
    "presenters.intro": (
        "Upload a presenter's template videos or images once; then pick the presenter for any job "
        '(job.toml: presenters = ["name"]) instead of uploading the templates again.',
        "每个数字人的模板视频或图片只需上传一次；之后任何任务都可以直接选择这个数字人"
        '（job.toml：presenters = ["name"]），不必再次上传模板。',
    ),
    "presenters.add": ("Add a presenter", "添加数字人"),
    "presenters.name": ("Name", "名称"),
    "presenters.upload": ("Upload", "上传"),
    "presenters.none": ("No presenter yet.", "还没有数字人。"),
    "presenters.empty": ("No template video or image.", "没有模板视频或图片。"),
    "presenters.reference": ('job.toml: presenters = ["{name}"]', 'job.toml：presenters = ["{name}"]'),
    "presenters.new_name": ("New name", "新名称"),
    "presenters.rename": ("Rename", "重命名"),
    "presenters.confirm": ("Yes, delete", "确认删除"),
    "presenters.delete": ("Delete", "删除"),
    "presenters.delete_confirm": (
        'Delete the presenter "{name}" and its templates? Jobs that name it will be refused.',
        "删除数字人“{name}”及其模板？引用它的任务将被拒绝。",
    ),
    "presenter.bad_name": (
        '"{name}" cannot be a presenter\'s name: one plain name (no "/", no "..", not starting with a dot).',
        "“{name}”不能作为数字人名称：只能是一个普通名称（不含“/”和“..”，不以点开头）。",
    ),
    "presenter.unknown": ('The presenter "{name}" is not in the library.', "形象库中没有数字人“{name}”。"),
    "presenter.exists": ('A presenter named "{name}" is in the library already.', "形象库中已有名为“{name}”的数字人。"),
    "presenter.no_template": (
        "Choose one or more template videos or images (no audio).",
        "请选择一个或多个模板视频或图片（不要音频）。",
    ),
    "presenter.confirm": ('Tick "Yes, delete" to delete "{name}".', "请勾选“确认删除”以删除“{name}”。"),
    "speech.bad_voice": (
        '"{voice}" is not a voice: auto, espeak-ng, kokoro or kokoro:<speaker>.',
        "“{voice}”不是可用的声音：auto、espeak-ng、kokoro 或 kokoro:<speaker>。",
    ),
    "speech.nothing_to_say": ("Type a script first.", "请先输入文稿。"),
    "speech.preview_failed": ("The script cannot be spoken: {reason}", "无法朗读这段文稿：{reason}"),
    "upload.client_empty": ('"{name}" is empty (0 bytes).', "“{name}”是空文件（0 字节）。"),
    "upload.client_audio_too_long": ('"{name}" is longer than {limit}.', "“{name}”超过了 {limit}。"),
    "upload.client_upload_too_large": ("These files are larger than {size} together.", "这些文件加起来超过了 {size}。"),
    # Why an upload, a request or a file was refused (the kinds of web.errors)
    "upload.malformed": ("The upload is not a well-formed form.", "上传的内容格式不正确。"),
    "upload.not_multipart": ("Send the files as multipart/form-data.", "请以 multipart/form-data 格式发送文件。"),
    "upload.too_many_parts": ("The upload has more parts than a job may have.", "上传的部分超过了一个任务允许的数量。"),
    "upload.unknown_field": ('The form has no file field "{field}".', "表单里没有名为“{field}”的文件字段。"),
    "upload.field_too_large": ('The field "{field}" is too long.', "字段“{field}”太长。"),
    "upload.file_too_large": (
        '"{name}" is larger than this service accepts ({limit}).',
        "“{name}”超过了服务允许的大小（{limit}）。",
    ),
    "upload.too_large": (
        "The upload is larger than this service accepts ({limit}).",
        "上传的内容超过了服务允许的大小（{limit}）。",
    ),
    "upload.no_space": (
        "There is not enough free space in the inbox for this upload.",
        "收件文件夹所在磁盘空间不足，无法上传。",
    ),
    "upload.no_inbox": ("The inbox is not there (is the share mounted?).", "收件文件夹不存在（共享文件夹是否已挂载？）。"),
    "upload.bad_name": (
        '"{name}" is not a plain file name (no folders, not hidden, not temporary).',
        "“{name}”不是普通文件名（不能含文件夹、不能是隐藏或临时文件）。",
    ),
    "upload.name_too_long": ('The name "{name}" is too long.', "名称“{name}”太长。"),
    "upload.not_audio": ('"{name}" is not an audio file.', "“{name}”不是音频文件。"),
    "upload.not_template": ('"{name}" is not a video or an image.', "“{name}”不是视频或图片。"),
    "upload.duplicate": ('Two files are named "{name}".', "有两个文件都叫“{name}”。"),
    "upload.no_audio": ("Choose an audio file or type a script.", "请选择音频文件或输入文稿。"),
    "upload.no_template": (
        "Choose one or more template videos, or pick presenters.",
        "请选择一个或多个模板视频，或选择数字人。",
    ),
    "upload.options_twice": (
        "Give the options either in the form or as job.toml, not both.",
        "选项请只用一种方式填写：表单或 job.toml。",
    ),
    "upload.bad_options": ("The options are not valid: {detail}", "选项无效：{detail}"),
    "upload.bad_job_name": (
        '"{name}" cannot be a job name (a plain name: no slashes, not starting with a dot).',
        "“{name}”不能作为任务名称（只能是普通名称：不含斜杠，不以点开头）。",
    ),
    "upload.no_free_name": ('No free job name like "{name}" is left.', "类似“{name}”的任务名称都已被占用。"),
    "upload.contract": ("The job cannot be accepted: {summary}", "无法接受这个任务：{summary}"),
    "upload.script_too_long": (
        "The script has {count} characters; this service accepts scripts of up to {limit}.",
        "文稿有 {count} 个字符；本服务最多接受 {limit} 个字符的文稿。",
    ),
    "upload.interrupted": ("The upload was interrupted.", "上传被中断了。"),
    "csrf.cross_site": ("Refused: the request comes from another site.", "已拒绝：请求来自其他网站。"),
    "csrf.missing": (
        "Refused: the form is out of date or comes from another site; reload the page.",
        "已拒绝：表单已过期或来自其他网站，请刷新页面。",
    ),
    "auth.required": (
        "Sign in first (the page's password, or an Authorization: Bearer token).",
        "请先登录（页面密码，或 Authorization: Bearer 令牌）。",
    ),
    "error.not_found.title": ("Not found", "找不到"),
    "error.not_found": ("Nothing is here.", "这里什么都没有。"),
    "error.http": ("The request cannot be served ({detail}).", "无法处理这个请求（{detail}）。"),
    "error.job_not_found": (
        'No job "{name}" is known: not in the inbox, not being rendered, not among the results.',
        "找不到任务“{name}”：不在收件文件夹、不在渲染中，也不在结果里。",
    ),
    "error.file_not_found": (
        "This job has no such file (or it is not a plain file).",
        "这个任务没有这个文件（或它不是普通文件）。",
    ),
    "error.already_finished": ("The job has finished already; there is nothing to cancel.", "任务已经结束，无法取消。"),
    "error.not_finished": ("The job has not finished: cancel it first.", "任务还没有结束：请先取消。"),
    "error.no_service": ("No service is known by that name.", "没有这个名称的服务。"),
    "error.range": ("The requested range is outside the file.", "请求的范围超出了文件。"),
}

# What the page's script needs (it shows the upload's progress and the answers of the API).
JS_KEYS = (
    "upload.uploading",
    "upload.kind_audio",
    "upload.kind_template",
    "upload.remove",
    "upload.unreadable_here",
    "upload.previewing",
    "upload.preview_failed",
    "upload.preview",
    "upload.client_empty",
    "upload.client_audio_too_long",
    "upload.client_upload_too_large",
    "upload.not_audio",
    "upload.not_template",
    "upload.duplicate",
    "duration.hours",
    "duration.minutes",
    "duration.seconds",
    "upload.client_file_too_large",
    "upload.client_too_many",
    "upload.failed",
    "control.cancel_confirm",
)

# The plain summary and the fix of every code, in Simplified Chinese (English: heygemd.codes).
CODE_TEXTS_ZH: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.INPUT_UNREADABLE: (
        "服务无法读取某个文件（没有权限）。",
        "请给服务的用户读取这个文件的权限（在共享文件夹上：文件的所有者或所属组），然后重新放入文件夹。",
    ),
    ErrorCode.INPUT_UNDECODABLE: (
        "某个文件不是可用的音频或视频（已损坏、不完整，或是其他类型的文件）。",
        "请重新导出或复制这个文件，确认它能正常播放，然后重新放入文件夹。",
    ),
    ErrorCode.INPUT_EMPTY: ("某个文件是空的（0 字节）。", "请重新复制这个文件，然后重新放入文件夹。"),
    ErrorCode.INPUT_INCOMPLETE: ("文件夹一直没有复制完。", "请完整地重新复制这些文件，然后重新放入文件夹。"),
    ErrorCode.INPUT_CHANGED_WHILE_RENDERING: (
        "渲染期间输入文件一直在变化：可能还在上传。",
        "请等上传完成后再重新放入文件夹。",
    ),
    ErrorCode.INPUT_MISSING: (
        "任务文件夹被接收后、渲染之前，其中一个输入文件被删除了。",
        "请把文件放回文件夹后重新放入。",
    ),
    ErrorCode.INPUT_REPLACED: (
        "任务被接收后，某个输入文件被换成了不是普通文件的东西（链接、管道或文件夹），没有读取它。",
        "请把真正的文件放进文件夹后重新放入。",
    ),
    ErrorCode.INPUT_MANIFEST_MISMATCH: (
        "某个文件的大小或校验和与 READY 标记里列出的不一致。",
        "请重新复制这个文件（或改正标记文件），然后重新放入文件夹。",
    ),
    ErrorCode.AUDIO_UNUSABLE: (
        "音频可以解码，但不能用来渲染（没有声音轨道、没有时长或采样无效）。",
        "请把音频重新导出为 WAV 或 MP3，然后重新放入文件夹。",
    ),
    ErrorCode.FACE_NOT_FOUND: ("在模板视频里没有找到人脸。", "请使用能清楚看到主持人正脸的模板视频，然后重新放入文件夹。"),
    ErrorCode.JOB_EMPTY: ("任务文件夹是空的。", "请放入一个音频文件和至少一个模板视频。"),
    ErrorCode.JOB_NO_AUDIO: ("任务文件夹里没有音频文件。", "请放入且只放入一个音频文件，然后重新放入文件夹。"),
    ErrorCode.JOB_SEVERAL_AUDIO: (
        "任务文件夹里有不止一个音频文件。",
        "请按音频拆分成多个文件夹（每个文件夹一个音频），然后重新放入。",
    ),
    ErrorCode.JOB_NO_TEMPLATE: ("任务文件夹里没有模板视频。", "请放入一个或多个模板视频，然后重新放入文件夹。"),
    ErrorCode.JOB_ONLY_FOLDERS: ("任务文件夹里只有文件夹。", "请把每个任务文件夹直接放进收件文件夹。"),
    ErrorCode.JOB_TOML_INVALID: ("job.toml 文件无效。", "请改正 job.toml（详细信息里写明了是哪一项），然后重新放入文件夹。"),
    ErrorCode.JOB_MODEL_UNAVAILABLE: (
        "job.toml 要求的口型同步模型不是本服务运行的模型（集群模式：没有在线的渲染节点运行该模型）。",
        "请删除 job.toml 中的 model 项，或把任务放到运行该模型的服务上，或启动运行该模型的渲染节点（engine.model）。",
    ),
    ErrorCode.NAME_TOO_LONG: ("某个名称对文件系统来说太长。", "请给文件或文件夹起一个短一些的名称，然后重新放入。"),
    ErrorCode.LIMIT_AUDIO_TOO_LONG: ("音频超过了服务允许的时长。", "请拆分音频，或请管理员调高 limits.max_audio_seconds。"),
    ErrorCode.LIMIT_TOO_MANY_TEMPLATES: (
        "任务里的模板视频超过了服务允许的数量。",
        "请把任务拆分成几个文件夹，或请管理员调高 limits.max_templates。",
    ),
    ErrorCode.LIMIT_FILE_TOO_LARGE: (
        "某个文件超过了服务允许的大小。",
        "请使用更小的文件（更短或码率更低），或请管理员调高 limits.max_file_bytes。",
    ),
    ErrorCode.LIMIT_SCRIPT_TOO_LONG: (
        "文稿超过了服务允许的长度。",
        "请把文稿拆分成几个文件，或请管理员调高 limits.max_script_chars。",
    ),
    ErrorCode.JOB_AUDIO_AND_SCRIPT: (
        "任务文件夹里同时有音频和文稿；一个任务只能用其中一种。",
        "请删除音频文件或文稿（.txt），或把它们放进不同的文件夹，然后重新放入。",
    ),
    ErrorCode.SCRIPT_EMPTY: ("文稿里没有可以朗读的文字。", "请在文稿（UTF-8 的 .txt 文件）里写入文字，然后重新放入文件夹。"),
    ErrorCode.SCRIPT_LANGUAGE_UNSUPPORTED: (
        "所选的语音不会说这份文稿的语言。",
        "请在 job.toml 里把 language（和 voice）设成与文稿一致，或选择会说这种语言的语音，然后重新放入。",
    ),
    ErrorCode.SPEECH_VOICE_UNAVAILABLE: (
        "所选的语音在这个服务上不可用。",
        "请选择 heygemd doctor 列为可用的语音，或请管理员安装它（fetch-models）。",
    ),
    ErrorCode.SPEECH_FAILED: (
        "语音没有为这份文稿生成任何声音。",
        "请确认文稿里是该语言的文字（而不只是符号），然后重新放入文件夹。",
    ),
    ErrorCode.PRESENTER_UNKNOWN: (
        "任务指定的主持人（或主持人的模板）不在主持人库里。",
        "请对照主持人文件夹检查 job.toml 里 presenters 的名称，然后重新放入文件夹。",
    ),
    ErrorCode.PRESENTER_EMPTY: (
        "某个主持人的文件夹里没有模板视频或图片。",
        "请把这个主持人的模板视频放进主持人库里对应的文件夹，然后重新放入任务。",
    ),
    ErrorCode.PRESENTER_BAD_NAME: (
        "job.toml 里的主持人名称不是普通名称（含有“..”、以“/”开头，或有多个“/”）。",
        "请写“名称”表示该主持人的全部模板，或写“名称/文件.mp4”表示其中一个，然后重新放入文件夹。",
    ),
    ErrorCode.DISK_FULL: ("保存结果的磁盘已满。", "需要管理员释放空间；在此期间任务会自动重试。"),
    ErrorCode.SHARE_UNAVAILABLE: (
        "无法访问共享文件夹或其中的文件。",
        "需要管理员检查共享文件夹（挂载、网络）；在此期间任务会自动重试。",
    ),
    ErrorCode.PROCESS_KILLED: ("辅助程序（ffmpeg）被外部停止了。", "通常不需要处理：任务会自动重试。"),
    ErrorCode.OUT_OF_MEMORY: ("机器内存不足。", "管理员可以调低 engine.batch_size；任务会自动重试。"),
    ErrorCode.RENDER_STALLED: (
        "渲染长时间没有进展（共享文件夹卡住或 GPU 无响应），已被停止。",
        "管理员应检查共享文件夹和 GPU；任务会自动重试。",
    ),
    ErrorCode.RENDER_ENCODER_FAILED: (
        "视频编码器（ffmpeg）在视频完成之前停止了；输入文件读取正常。",
        "通常不需要处理：视频会重新渲染；如果一直出现，请管理员查看服务日志。",
    ),
    ErrorCode.RENDER_OPTION_UNFIT: (
        "某个渲染选项不适合这个模板（fixed_box 超出了画面）。",
        "请改正该选项（job.toml 或配置文件的 [render]），然后重新放入文件夹。",
    ),
    ErrorCode.OUTPUT_MISMATCH: (
        "生成的视频声音和画面的时长不一致。",
        "通常不需要处理：视频会重新渲染；如果一直出现，请连同任务文件一起报告。",
    ),
    ErrorCode.SERVICE_CRASHED: (
        "服务在处理这个任务时多次意外停止。",
        "管理员应查看服务日志（journalctl -u heygemd），然后重新放入文件夹。",
    ),
    ErrorCode.CANCELLED: ("任务已被取消。", "如果仍要渲染，请重新放入文件夹。"),
    ErrorCode.INTERNAL: (
        "heygemd 自身的缺陷导致处理这个输入失败。",
        "请连同任务文件一起报告给管理员；服务日志里有详细信息。",
    ),
}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


class Translator:
    """The words of one language."""

    def __init__(self, language: str) -> None:
        self.language = language if language in LANGUAGE_CODES else EN
        self._index = LANGUAGE_CODES.index(self.language)

    def __call__(self, key: str, **params: object) -> str:
        texts = MESSAGES.get(key)
        if texts is None:
            return key  # a word without its entry shows up as its key (a test keeps the catalogue complete)
        text = texts[self._index]
        return text.format(**params) if params else text

    def code_summary(self, code: ErrorCode | str) -> str:
        code = ErrorCode(code)
        return CODE_TEXTS_ZH[code][0] if self.language == ZH else code.info.summary

    def code_fix(self, code: ErrorCode | str) -> str:
        code = ErrorCode(code)
        return CODE_TEXTS_ZH[code][1] if self.language == ZH else code.info.fix

    def state(self, state: str) -> str:
        key = "state." + state.replace(" ", "_")
        return self(key) if key in MESSAGES else state

    def status(self, status: str, code: ErrorCode | str | None = None) -> str:
        return self("status.cancelled") if code == ErrorCode.CANCELLED else self(f"status.{status}")

    def duration(self, seconds: float) -> str:
        whole = max(0, round(seconds))
        hours, rest = divmod(whole, 3600)
        minutes, secs = divmod(rest, 60)
        if hours:
            return self("duration.hours", h=hours, m=f"{minutes:02d}")
        if minutes:
            return self("duration.minutes", m=minutes, s=f"{secs:02d}")
        return self("duration.seconds", s=secs if seconds >= 10 or seconds == whole else f"{seconds:.1f}")

    def js_messages(self) -> dict[str, str]:
        return {key: MESSAGES[key][self._index] for key in JS_KEYS}
