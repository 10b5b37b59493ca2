"""Every label of the app in Chinese and English, and the choice of one from the browser."""
from __future__ import annotations

LANGS = {"zh": "中文", "en": "English"}

LABELS: dict[str, dict[str, str]] = {
    "page_title": {"zh": "文档问答", "en": "Ask your PDFs"},
    "interface_language": {"zh": "界面语言", "en": "Interface language"},
    # knowledge bases
    "kb": {"zh": "知识库", "en": "Knowledge base"},
    "kb_help": {"zh": "知识库保存在 {root} 下，每个一个文件夹。", "en": "Knowledge bases are folders under {root}."},
    "no_kb": {"zh": "还没有知识库：在左侧新建一个，或运行 `make run` 生成示例知识库。",
              "en": "No knowledge base yet: create one in the sidebar, or run `make run` to build the sample one."},
    "new_kb": {"zh": "新建知识库", "en": "New knowledge base"},
    "new_kb_name": {"zh": "名称", "en": "Name"},
    "create": {"zh": "创建", "en": "Create"},
    "created": {"zh": "已创建知识库 {name}。", "en": "Created the knowledge base {name}."},
    "delete_kb": {"zh": "删除此知识库", "en": "Delete this knowledge base"},
    "delete_kb_confirm": {"zh": "我确定要删除 {name} 及其全部文件", "en": "Yes, delete {name} and all its files"},
    "delete": {"zh": "删除", "en": "Delete"},
    "kb_deleted": {"zh": "已删除知识库 {name}。", "en": "Deleted the knowledge base {name}."},
    "cannot_open": {"zh": "无法打开知识库：{reason}", "en": "Cannot open the knowledge base: {reason}"},
    # upload
    "upload": {"zh": "上传文档", "en": "Upload documents"},
    "upload_help": {"zh": "可一次选择多个文件，每个不超过 {mb:g} MB。", "en": "Several files at once, up to {mb:g} MB each."},
    "upload_types": {"zh": "PDF、Word、PowerPoint、Excel、CSV、HTML、Markdown、文本、EPUB、PNG/JPEG 图片（图片中的文字经 OCR 识别）。",
                     "en": "PDF, Word, PowerPoint, Excel, CSV, HTML, Markdown, text, EPUB, PNG/JPEG images (their text read by OCR)."},
    "ingest": {"zh": "加入知识库", "en": "Add to knowledge base"},
    "ingesting": {"zh": "正在处理 {n} 个文件…", "en": "Ingesting {n} files…"},
    "ingest_step": {"zh": "{done}/{total} · {name}", "en": "{done}/{total} · {name}"},
    "ingest_embed": {"zh": "已向量化 {chunks} 个段落", "en": "{chunks} passages embedded"},
    "ingest_done": {"zh": "处理完成", "en": "Ingestion finished"},
    "ingest_failed_some": {"zh": "处理完成，部分文件失败", "en": "Finished, some files failed"},
    "report": {"zh": "上传结果", "en": "Upload report"},
    "outcome_added": {"zh": "已加入", "en": "added"},
    "outcome_replaced": {"zh": "已更新", "en": "replaced"},
    "outcome_skipped": {"zh": "未变化，跳过", "en": "unchanged, skipped"},
    "outcome_failed": {"zh": "失败", "en": "failed"},
    "report_line": {"zh": "加入 {added} · 更新 {replaced} · 未变化 {skipped} · 失败 {failed} · {pages} 页 · {chunks} 个段落 · {seconds:.1f} 秒",
                    "en": "added {added} · replaced {replaced} · unchanged {skipped} · failed {failed} · {pages} pages · {chunks} passages · {seconds:.1f} s"},
    "dismiss": {"zh": "关闭", "en": "Dismiss"},
    # documents
    "documents": {"zh": "文档（{n}）", "en": "Documents ({n})"},
    "no_documents": {"zh": "知识库是空的：先上传文档。", "en": "The knowledge base is empty: upload documents first."},
    "doc_line": {"zh": "{pages} 页 · {chunks} 个段落", "en": "{pages} pages · {chunks} passages"},
    "doc_empty_pages": {"zh": " · {n} 页无文字层", "en": " · {n} pages without text"},
    "delete_doc": {"zh": "删除文档", "en": "Delete document"},
    "delete_doc_confirm": {"zh": "从知识库删除 {name}？", "en": "Remove {name} from the knowledge base?"},
    "yes_delete": {"zh": "删除", "en": "Delete"},
    "cancel": {"zh": "取消", "en": "Cancel"},
    "doc_deleted": {"zh": "已删除 {name}，回答中不会再引用它。", "en": "Removed {name}: answers no longer use it."},
    # preferences
    "prefs": {"zh": "回答设置", "en": "Answer settings"},
    "prefs_help": {"zh": "保存在此知识库中。", "en": "Saved with this knowledge base."},
    "passages": {"zh": "参考段落数", "en": "Passages per answer"},
    "answer_language": {"zh": "回答语言", "en": "Answer language"},
    "lang_auto": {"zh": "跟随问题", "en": "Same as the question"},
    "lang_zh": {"zh": "中文", "en": "Chinese"},
    "lang_en": {"zh": "英文", "en": "English"},
    "backend": {"zh": "生成模型", "en": "Answer generator"},
    "backend_local": {"zh": "本地模型（{spec}）", "en": "Local model ({spec})"},
    "backend_extractive": {"zh": "摘录原文（不用大模型，最快）", "en": "Quote the documents (no language model, fastest)"},
    "backend_openai": {"zh": "OpenAI 兼容服务（vLLM、Ollama、DeepSeek…）", "en": "OpenAI-compatible server (vLLM, Ollama, DeepSeek…)"},
    "base_url": {"zh": "服务地址（Base URL）", "en": "Base URL"},
    "model": {"zh": "模型名", "en": "Model"},
    "api_key": {"zh": "API Key（只在本次会话中使用，不保存）", "en": "API key (used in this session only, never saved)"},
    "save": {"zh": "保存设置", "en": "Save settings"},
    "saved": {"zh": "设置已保存。", "en": "Settings saved."},
    "bad_prefs": {"zh": "设置无效：{reason}", "en": "Invalid settings: {reason}"},
    # chat
    "new_chat": {"zh": "新对话", "en": "New chat"},
    "ask": {"zh": "用中文或英文提问…", "en": "Ask in Chinese or English…"},
    "intro": {"zh": "知识库 **{name}** · {docs} 个文档 · {chunks} 个段落。回答只依据这些文档，并注明出处。",
              "en": "Knowledge base **{name}** · {docs} documents · {chunks} passages. Answers come only from these documents, with their sources."},
    "generator_fallback": {"zh": "生成模型 {spec} 无法加载，改为摘录原文回答。原因：{reason}",
                           "en": "The generator {spec} could not load, so answers quote the documents instead. Reason: {reason}"},
    "thinking": {"zh": "正在检索并生成回答…", "en": "Searching and writing the answer…"},
    "sources": {"zh": "出处", "en": "Sources"},
    "source_title": {"zh": "[{n}] {name} · 第 {page} 页", "en": "[{n}] {name} · page {page}"},
    "source_title_place": {"zh": "[{n}] {name} · {place}", "en": "[{n}] {name} · {place}"},  # a slide, sheet rows, a heading path
    "show_passage": {"zh": "查看此段（表格按表格显示）", "en": "Show the passage (tables as tables)"},
    "page_label": {"zh": "（页码标签 {label}）", "en": " (labelled {label})"},
    "page_caption": {"zh": "{name} 第 {page} 页", "en": "{name}, page {page}"},
    "show_page": {"zh": "查看此页", "en": "Show the page"},
    "download": {"zh": "下载文件", "en": "Download the file"},
    "no_file": {"zh": "原文件不在磁盘上，只能显示段落。", "en": "The original file is not on disk: only the passage can be shown."},
    "refused": {"zh": "文档中没有这个问题的答案。", "en": "The documents do not contain the answer to this question."},
    "refused_reason_low retrieval score": {"zh": "没有足够相关的段落。", "en": "No passage is close enough to the question."},
    "refused_reason_answerability score": {"zh": "模型自身的判断（可回答性评分）认为这些段落不能回答这个问题。",
                                           "en": "The model's own state (its answerability score) says these passages do not answer the question."},
    "refused_reason_no passages": {"zh": "知识库是空的。", "en": "The knowledge base is empty."},
    "refused_reason_model said so": {"zh": "模型判断文档中没有答案。", "en": "The model found no answer in the passages."},
    "refused_reason_unsupported": {"zh": "草拟的回答没有得到段落支持，已撤回。", "en": "The draft answer was not supported by the passages, so it was withdrawn."},
    "refused_reason_not about the question": {"zh": "草拟的回答引用的段落并不是在回答这个问题，已撤回。",
                                              "en": "The draft answer cited passages that do not answer this question, so it was withdrawn."},
    "closest": {"zh": "最接近的段落：", "en": "The closest passages:"},
    "closest_title": {"zh": "{name} · 第 {page} 页 · 相似度 {score:.2f}", "en": "{name} · page {page} · similarity {score:.2f}"},
    "closest_title_place": {"zh": "{name} · {place} · 相似度 {score:.2f}", "en": "{name} · {place} · similarity {score:.2f}"},
    "evidence_quoted": {"zh": "以上是文档原文：模型的回答在文档中找不到依据，因此直接引用了最相关的句子。",
                        "en": "Quoted from the documents: the model's own answer was not grounded in them, so the closest sentence is shown."},
    "timing": {"zh": "用时 {total:.1f} 秒 · 生成模型 {generator}", "en": "{total:.1f} s · generator {generator}"},
    "answer_failed": {"zh": "回答失败：{reason}", "en": "Could not answer: {reason}"},
    "model_stopped": {"zh": "本地模型停止了（{why}），这个问题没有得到回答。请再问一次：下一个问题会重新启动模型。文档和知识库不受影响。",
                      "en": "The local model stopped ({why}), so this question got no answer. Ask again: the next question "
                            "starts the model afresh. Your documents and knowledge bases are not affected."},
    "unexpected": {"zh": "出错了：{reason}。详情见服务器日志。", "en": "Something went wrong: {reason}. Details are in the server log."},
}


def t(key: str, lang: str, **values) -> str:
    """The label `key` in `lang` ('zh' or 'en'), with `values` filled in."""
    text = LABELS[key].get(lang) or LABELS[key]["en"]
    return text.format(**values) if values else text


def language_from(locale: str | None, accept_language: str | None) -> str:
    """'zh' when the browser prefers Chinese (navigator.language, else the Accept-Language header), else 'en'."""
    first = (locale or (accept_language or "").split(",")[0]).strip().lower()
    return "zh" if first.startswith("zh") else "en"
