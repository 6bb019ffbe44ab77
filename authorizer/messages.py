"""The gateway's own words, written once: every refusal (a machine-readable code with its HTTP
status and its message in zh-CN and English, :data:`CATALOG`) and every text its pages and
records show (:data:`TEXTS`).

Messages may name values (``{names}``, ``{limit}``): :func:`proxy.responses.refusal` and
:class:`CatalogError` fill them in. Reasons the policy gives (``out_of_scope``,
``missing_permission``...) are not here: they come from the policy layer's messages
(``rego/base/wms/base/messages/data.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Text:
    """One text in both languages (``str.format`` templates where it names values)."""

    zh: str
    en: str

    def format(self, **params: Any) -> Text:
        """The text with ``params`` filled in."""
        return Text(self.zh.format(**params), self.en.format(**params))


@dataclass(frozen=True)
class Message:
    """One refusal: its status and message (``str.format`` templates) in both languages.

    Attributes:
        status: the HTTP status.
        zh, en: the message in zh-CN and English.
        retry_after: seconds in ``Retry-After`` (a passing outage), or None.
        code: the code clients get when it is not the catalog key (two situations, one code).
    """

    status: int
    zh: str
    en: str
    retry_after: int | None = None
    code: str | None = None


CATALOG: MappingProxyType[str, Message] = MappingProxyType({
    # request hygiene (proxy/hygiene.py)
    "method_refused": Message(405, "不支持的方法 {method}",
                              "method {method} is not allowed", code="method_not_allowed"),
    "bad_request_target": Message(400, "请求目标必须是以 / 开头的路径",
                                  "the request target must be a path starting with /"),
    "bad_character": Message(400, "请求目标含有不允许的字符", "the request target has a forbidden character"),
    "bad_percent_encoding": Message(400, "百分号编码格式错误", "malformed percent-encoding"),
    "path_parameters": Message(400, "路径含有 ; 参数", "the path has ';' parameters"),
    "query_semicolon": Message(400, "查询字符串含有 ;(部分 WMS 把它当作参数分隔符)",
                               "the query string has a ';' (some WMSs read it as a parameter separator)"),
    "empty_segment": Message(400, "路径含有空段(//)", "the path has an empty segment ('//')"),
    "dot_segment": Message(400, "路径含有 . 或 .. 段", "the path has a '.' or '..' segment"),
    "encoded_dot_segment": Message(400, "路径含有编码的 . 或 .. 段", "the path has an encoded '.' or '..' segment",
                                   code="dot_segment"),
    "bad_encoding": Message(400, "路径不是有效的 UTF-8", "the path is not valid UTF-8"),
    "encoded_slash": Message(400, "路径含有编码的斜杠", "the path has an encoded slash or backslash"),
    "double_encoding": Message(400, "路径含有双重编码", "the path is percent-encoded twice"),
    "control_character": Message(400, "路径含有控制字符", "the path has a control character"),
    "query_control_character": Message(400, "查询参数含有控制字符", "a query parameter has a control character",
                                       code="control_character"),
    "bad_query": Message(400, "查询字符串无法解析", "the query string cannot be parsed"),
    "duplicate_authorization": Message(400, "请求含有多个 Authorization 头", "more than one Authorization header"),
    "duplicate_host": Message(400, "请求含有多个 Host 头", "more than one Host header"),
    "method_override_refused": Message(400, "不接受 {name} 头", "the {name} header is not accepted"),
    "unsupported_content_encoding": Message(415, "不接受压缩的请求体(Content-Encoding)",
                                            "compressed request bodies (Content-Encoding) are not accepted"),
    # bearer tokens (RFC 6750; the English is the WWW-Authenticate description)
    "missing_token": Message(401, "需要登录:请提供 Bearer 令牌", "{detail}"),
    "token_expired": Message(401, "访问令牌已过期,请重新获取", "{detail}"),
    "invalid_token": Message(401, "访问令牌无效", "{detail}"),
    # the WMS tenant (authorizer/authz/tenancy.py; {dim_zh} names the dimension in Chinese)
    "tenant_several": Message(400, "请求只能指定一个{dim_zh}(WMS 按{dim_zh}分租户)",
                              "a request names exactly one {dim} (the WMS has one tenant per {dim})",
                              code="ambiguous_tenant"),
    "tenant_all": Message(400, "请指定具体的{dim_zh}", "name one {dim}, not all of them", code="ambiguous_tenant"),
    "tenant_out_of_scope": Message(403, "您的数据范围不包括{dim_zh} {value}",
                                   "your data scope does not include {dim} {value}"),
    "tenant_required": Message(400, "您可访问多个{dim_zh},请用 {hint} 指定一个",
                               "you may use several {dim}s: name one{with_hint}"),
    # access changes (authorizer/iam/access.py)
    "identity_provider_error": Message(502, "身份服务出错", "Keycloak failed: {detail}"),
    "identity_provider_error_partial": Message(502, "身份服务出错,部分操作未完成(令牌已吊销)",
                                               "Keycloak failed part-way; tokens are revoked: {detail}",
                                               code="identity_provider_error"),
    "identity_provider_error_grants": Message(502, "身份服务出错,部分授权可能已完成",
                                              "Keycloak failed after {done} of {total} grants: {detail}",
                                              code="identity_provider_error"),
    "user_not_found": Message(404, "用户 {username} 不存在", "no user {username!r}"),
    "unknown_role": Message(400, "角色不存在", "unknown role: {detail}"),
    "built_in_role": Message(400, "不能授予内置角色", "built-in roles cannot be granted", code="unknown_role"),
    "grants_unavailable": Message(503, "临时授权未配置", "temporary grants are not configured"),
    "grant_not_found": Message(404, "{username} 没有这项生效中的临时授权",
                               "{username} has no such live temporary grant"),
    # decisions the PEP makes itself when the PDP's answer cannot be used (authorizer/authz/pdp.py)
    "pdp_undefined": Message(403, "策略未给出决定,按默认拒绝", "the policy gave no decision; denied by default"),
    "pdp_malformed": Message(403, "策略决定格式错误,已拒绝", "the policy decision is malformed; denied"),
    "obligations_malformed": Message(403, "策略义务格式错误,已拒绝", "the policy obligations are malformed; denied",
                                     code="pdp_malformed"),
    "unknown_obligation": Message(403, "网关无法执行策略义务 {names},已拒绝",
                                  "the gateway cannot enforce obligation(s) {names}; denied"),
    "denied": Message(403, "策略拒绝", "denied by policy"),
    # the request path
    "body_not_json": Message(400, "请求体无效:不是有效的 JSON", "invalid request body: not valid JSON",
                             code="bad_request_body"),
    "body_not_object": Message(400, "请求体无效:必须是 JSON 对象", "invalid request body: must be a JSON object",
                               code="bad_request_body"),
    "route_not_mapped": Message(403, "此接口未在路由表中登记,默认拒绝",
                                "this endpoint is not in the route map; denied by default"),
    "not_found": Message(404, "资源不存在", "the resource does not exist"),
    "query_parameter_not_allowed": Message(400, "此接口不接受查询参数:{names}",
                                           "this endpoint does not accept the query parameter(s): {names}"),
    "filter_on_masked_field": Message(403, "不能按您无权查看的字段筛选或排序:{names}",
                                      "you may not filter or sort by fields you are not allowed to see: {names}"),
    "unsupported_media_type": Message(415, "请求体必须是 UTF-8 编码的 application/json",
                                      "the body must be application/json in UTF-8"),
    "bad_request_body": Message(400, "请求体无效:{detail}", "invalid request body: {detail}"),
    "body_too_large": Message(413, "请求体超过 {limit} 字节", "the request body exceeds {limit} bytes"),
    "attribute_lookup_failed": Message(502, "无法从 WMS 查询资源属性", "could not look up the resource on the WMS"),
    "held_body_too_large": Message(413, "需审批的请求体不能超过 {limit} 字节(审批人须能看到全部内容)",
                                   "a request held for approval may carry at most {limit} bytes "
                                   "(approvers see all of it)"),
    "too_many_pending": Message(429, "您已有 {limit} 个待审批的申请,请等待处理或撤回",
                                "you already have {limit} requests waiting for approval; wait or withdraw some",
                                retry_after=60),
    "no_caller_identity": Message(403, "您的账号缺少 WMS 需要的身份信息({name}),请联系管理员",
                                  "your account lacks the identity the WMS needs ({name}); ask an administrator"),
    "no_upstream_credential": Message(403, "此请求无法确定唯一仓库,无法选择 WMS 凭据",
                                      "the request does not name one warehouse with a WMS credential"),
    "identity_field_mismatch": Message(403, "请求体字段 {field} 必须是您本人({value}),不能代他人操作",
                                       "body field {field} must name you ({value}); acting as someone else is refused"),
    "response_not_enforceable": Message(502, "无法对 WMS 的响应执行脱敏或过滤,已拒绝",
                                        "the WMS answer could not be masked or filtered as policy requires ({detail})"),
    # authentication and sessions
    "revocations_stale": Message(503, "吊销记录暂时无法刷新,请稍后重试",
                                 "revocations could not be refreshed; try again later", retry_after=5),
    "token_revoked": Message(401, "您的访问权限已变更或被收回,请重新登录",
                             "your access changed or was withdrawn; log in again"),
    "session_ended": Message(401, "登录已失效,请重新登录", "your login session ended; log in again"),
    "csrf_check_failed": Message(403, "表单已失效,请刷新页面后重试", "the form expired; reload the page and try again"),
    "cross_site_request": Message(403, "请求并非来自本网关的页面(疑似跨站请求),已拒绝",
                                  "the request did not come from the gateway's own pages (cross-site request); "
                                  "refused", code="csrf_check_failed"),
    # outages
    "pdp_unavailable": Message(503, "授权服务暂不可用,请稍后重试",
                               "the authorization service is unavailable; try again later", retry_after=5),
    "issuer_unavailable": Message(503, "身份服务暂不可用,请稍后重试",
                                  "the identity provider is unavailable; try again later", retry_after=5),
    "audit_unavailable": Message(503, "审计日志暂不可写,请求已拒绝",
                                 "the audit trail cannot record requests right now; refused", retry_after=5),
    "audit_store_unavailable": Message(503, "审计日志库暂不可用,请稍后重试",
                                       "the audit store is unavailable; try again later", retry_after=5),
    "upstream_timeout": Message(504, "WMS 响应超时", "the WMS did not answer in time"),
    "upstream_error": Message(502, "WMS 处理请求时出错;错误详情已隐藏,请把决策编号告知管理员",
                              "the WMS failed while handling the request; its error details are withheld, "
                              "give the decision id to an administrator"),
    "upstream_refused": Message(400, "WMS 拒绝了此请求", "the WMS refused the request", code="upstream_error"),
    "upstream_unavailable": Message(502, "WMS 暂不可用", "the WMS is unavailable"),
    "gateway_error": Message(500, "网关内部错误,请求未执行;请把决策编号告知管理员",
                             "the gateway failed internally and did not carry out the request; "
                             "give the decision id to an administrator"),
    "access_management_unavailable": Message(503, "访问管理未配置(keycloak_admin)",
                                             "access management is not configured (keycloak_admin)"),
    "alerting_unavailable": Message(503, "告警服务暂不可用,请稍后重试",
                                    "the alerting service is unavailable; try again later", retry_after=5),
    # the gateway's own endpoints
    "gateway_endpoint_not_found": Message(404, "网关没有此接口", "the gateway has no such endpoint"),
    "method_not_allowed": Message(405, "此接口不支持该请求方法", "this endpoint does not accept the method"),
    "bad_request": Message(400, "请求无法处理", "the request cannot be handled ({detail})"),
    "approval_not_found": Message(404, "审批单不存在", "no such approval"),
    "approval_not_pending": Message(409, "审批单状态为 {status},不能再{what_zh}",
                                    "the approval is {status}; it can no longer be {what_en}"),
    "request_no_longer_allowed": Message(409, "申请已失效:申请人的权限或策略已变更,已自动撤销",
                                         "the request was cancelled: {problem}"),
    "already_decided": Message(409, "您已对此申请做出过决定", "you have already decided on this request"),
    "not_the_requester": Message(403, "只有申请人可以撤回申请", "only the requester can withdraw a request"),
    "alert_not_found": Message(404, "没有这条告警(告警编号为 32 位十六进制)",
                               "no such alert (alert ids are 32 hexadecimal digits)"),
    "bad_alert_query": Message(400, "状态只能是 open、acknowledged、resolved 或 all",
                               "status must be open, acknowledged, resolved or all"),
    "bad_alert_note": Message(400, '请求体须为 {{"note": 备注}}(可选,至多 {limit} 字)',
                              'the body must be {{"note": "..."}} (optional, at most {limit} characters)',
                              code="bad_body"),
    "alerts_approval_not_supported": Message(403, "处理告警不支持审批流程,请联系安全团队",
                                             "handling alerts cannot go through an approval; ask the security team",
                                             code="approval_not_supported"),
    "reviews_approval_not_supported": Message(403, "访问复核不支持审批流程,请联系安全团队",
                                              "access reviews cannot go through an approval; ask the security team",
                                              code="approval_not_supported"),
    "audit_approval_not_supported": Message(403, "审计日志的读取不支持审批流程,请联系安全团队",
                                            "reading the audit trail cannot go through an approval; "
                                            "ask the security team", code="approval_not_supported"),
    "bad_audit_query": Message(400, "审计查询参数 {name} 有误:{zh}", "audit query parameter {name}: {en}"),
    "bad_review": Message(400, "访问复核请求有误:{zh}", "access review: {en}"),
    "access_reviews_unavailable": Message(503, "访问复核未配置(需要 keycloak_admin 和 audit.signing_key_file)",
                                          "access reviews are not configured (they need keycloak_admin and "
                                          "audit.signing_key_file)"),
    "review_unknown_warehouse": Message(409, "没有人的数据范围中写明仓库 {warehouse}(是否拼写有误?)",
                                        "nobody's scope names warehouse {warehouse} (a typo?)"),
    "review_own_access": Message(403, "不能复核自己的权限,请由其他复核人处理",
                                 "you cannot review your own access; another reviewer must"),
    "review_undecided_items": Message(409, "还有 {count} 项未复核;未复核的项目将被撤销,请复核完毕或等待截止",
                                      "{count} item(s) are undecided and would be revoked: decide them or wait for "
                                      "the deadline"),
    "review_nothing_to_review": Message(409, "此范围内没有需要复核的人员", "nobody is in this review's scope"),
    "review_not_found": Message(404, "复核活动不存在", "no such access review"),
    "review_item_not_found": Message(404, "复核活动中没有这一项", "no such item in this access review"),
    "review_closed": Message(409, "复核活动已结束,不能再更改", "the access review is closed; nothing can change"),
    "review_not_closed": Message(409, "复核活动尚未结束,还没有签名结果", "the access review is not closed yet, so "
                                                                     "it has no signed result"),
    "export_reason_required": Message(428, "此导出{why_zh}({rows} 行),需要说明用途:"
                                           "请在请求头 X-Export-Reason 中填写原因",
                                      "this export has {why_en} ({rows} rows): give its purpose in the "
                                      "X-Export-Reason header"),
    "export_too_large": Message(403, "导出 {rows} 行,超过上限 {limit} 行;请缩小范围后分批导出",
                                "the export has {rows} rows, above the limit of {limit}: narrow it"),
    "export_approval_not_found": Message(404, "找不到您的这张导出审批单(X-Export-Approval)",
                                         "no export approval of yours has that id (X-Export-Approval)"),
    "export_approval_unusable": Message(409, "导出审批单{why_zh},不能用于此次下载",
                                        "the export approval {why_en}; it cannot be used for this download"),
    "export_reason_invalid": Message(400, "X-Export-Reason 须为 UTF-8(非 ASCII 字符请百分号编码),至多 {limit} 字",
                                     "X-Export-Reason must be UTF-8 (percent-encoded when not ASCII), at most "
                                     "{limit} characters"),
    "bad_usage_query": Message(400, "使用情况查询参数 {name} 有误:{zh}", "usage query parameter {name}: {en}"),
    "role_conflict": Message(409, "{username} 不能同时拥有 {roles}(职责分离):{why_zh}",
                             "{username} may not hold {roles} together (separation of duties): {why_en}"),
    "policy_engine_unavailable": Message(503, "策略引擎(OPA)暂不可用,无法读取角色权限,请稍后重试",
                                         "the policy engine (OPA) is unavailable, so role permissions cannot be "
                                         "read; try again later", retry_after=5),
    "not_me_link_invalid": Message(400, "此“不是我”链接无效或已过期({why}),请联系安全团队",
                                   "this \"not me\" link is invalid or expired ({why}); contact the security team"),
    "reveal_not_a_record": Message(400, "只能对单条记录的字段申请临时查看:{path} 不是已登记的单条记录地址(GET)",
                                   "a reveal is of one field of one record: {path} is not a mapped single-record "
                                   "route (GET)"),
    "reveal_approval_not_supported": Message(403, "临时查看不支持审批流程,请联系安全团队",
                                             "a reveal cannot go through an approval; ask the security team",
                                             code="approval_not_supported"),
    "field_not_masked": Message(409, "字段 {field} 对您并未脱敏,无需申请查看",
                                "field {field} is not masked for you; there is nothing to reveal"),
    "confirmation_missing": Message(400, "请填写原因并勾选确认", "give a reason and tick the confirmation"),
    "roles_missing": Message(400, "请至少填写一个角色", "give at least one role", code="bad_request_body"),
    "text_field_invalid": Message(400, "{name} 必须是非空字符串", "{name} must be a non-empty string",
                                  code="bad_request_body"),
    "rows_invalid": Message(400, "rows 必须是对象列表", "rows must be a list of objects", code="bad_request_body"),
    "roles_invalid": Message(400, "roles 必须是非空的角色列表", "roles must be a non-empty list",
                             code="bad_request_body"),
    "scope_invalid": Message(400, "scope 格式错误", "scope must map dimensions to lists of values",
                             code="bad_request_body"),
    "bad_grant": Message(400, "授权文件有误:{detail}", "invalid grant: {detail}"),
})



#: Texts that are not refusals: what pages, records and answers say (keys name where they are used).
TEXTS: MappingProxyType[str, Text] = MappingProxyType({
    "allowed": Text("允许", "allowed"),
    # the scope dimensions, in messages (the policy's own names are in its data: wms/base/dimensions)
    "dimension_warehouse": Text("仓库", "warehouse"),
    "dimension_channel": Text("渠道", "channel"),
    "dimension_order_type": Text("订单类型", "order type"),
    # a request held for four-eyes approval (proxy/pipeline.py)
    "held": Text("此操作需要第二人审批,已提交;审批通过后由网关执行",
                 "this operation needs a second person's approval; it will run once approved"),
    "export_held": Text("导出行数超过需审批的上限,已提交第二人审批;"
                        "批准后请带上请求头 X-Export-Approval 重新导出(仅限一次)",
                        "this export is above the size that needs a second person's approval; it was held. Once "
                        "approved, send the same request again with the X-Export-Approval header (once)"),
    "held_record": Text("高风险操作,已提交审批", "high-risk operation; held for approval"),
    # a change of enforcement mode, as the audit trail records it (proxy/app.py)
    "mode_changed": Text("执行模式变更:{key} 从{before}改为{after}",
                         "enforcement changed: {key} from {before} to {after}"),
    "mode_enforce": Text("强制执行", "enforce"),
    "mode_report": Text("仅记录(影子模式)", "report"),
    "mode_none": Text("(首次启动)", "none"),
    # why a browser login did not complete (proxy/management/auth.py)
    "login_identity_provider_unavailable": Text("身份服务暂不可用,请稍后重试",
                                                "The identity provider is unavailable; try again later"),
    "login_cancelled": Text("登录已取消或未通过", "The login was cancelled or refused"),
    "login_expired": Text("登录请求已过期,或不是在此浏览器中发起的",
                          "The login expired or was not started in this browser"),
    "login_not_verified": Text("登录未通过校验,请重新登录", "The login could not be verified; log in again"),
    "login_step_up_not_met": Text("未完成所需的身份验证(动态验证码)",
                                  "The identity check asked for (one-time code) was not completed"),
    # page titles (proxy/browser_pages.py, the console)
    "title_login_needed": Text("需要登录", "Login needed"),
    "title_not_allowed": Text("没有权限", "Not allowed"),
    "title_not_found": Text("页面不存在", "Not found"),
    "title_cannot_handle": Text("暂时无法处理", "Cannot handle this right now"),
    "title_login_not_completed": Text("登录未完成", "Login not completed"),
    "title_log_out": Text("退出登录", "Log out"),
    "title_logged_out": Text("您已退出登录", "You are logged out"),
    "title_not_me": Text("不是我本人登录?", "Not you?"),
    "title_not_me_done": Text("所有会话已结束", "Every session has ended"),
    "not_me_note": Text("非本人登录:已通过告警链接结束该账号的所有会话",
                        "not me: every session of the account ended through the alert's link"),
    "title_nothing_to_show": Text("没有可显示的记录", "Nothing to show"),
    # the admin console (proxy/management/console*.py, proxy/console_pages.py)
    "title_approvals": Text("审批", "Approvals"),
    "title_people": Text("人员与权限", "People"),
    "title_access_change": Text("权限变更", "Access change"),
    "title_audit": Text("审计日志", "Audit trail"),
    "title_why": Text("为何被拒绝?", "Why denied?"),
    "title_who_can": Text("谁可以?", "Who can?"),
    "title_alerts": Text("安全告警", "Security alerts"),
    "title_reveal": Text("临时查看脱敏字段", "Reveal a masked field"),
    "nav_approvals": Text("审批", "Approvals"),
    "nav_audit": Text("审计日志", "Audit trail"),
    "nav_people": Text("人员与权限", "People"),
    "nav_why": Text("为何被拒绝", "Why denied"),
    "nav_who_can": Text("谁可以", "Who can"),
    "nav_alerts": Text("告警", "Alerts"),
    "nav_reveal": Text("临时查看", "Reveal"),
    "nav_reviews": Text("访问复核", "Access reviews"),
    "title_reviews": Text("访问复核", "Access reviews"),
    "title_review": Text("访问复核活动", "Access review"),
    "review_done_started": Text("复核活动已发起", "The access review has started"),
    "review_done_decided": Text("已记录复核决定", "Decision recorded"),
    "review_done_closed": Text("复核已结束,撤销已执行,结果已签名",
                               "The review is closed: revocations done, result signed"),
    "change_held": Text("已提交审批(审批单 {approval_id}),另一位管理员批准后生效。",
                        "Sent for approval ({approval_id}); it takes effect once another admin approves."),
    "change_offboarded": Text("{username} 已离职处理,全部权限已收回。",
                              "{username} was offboarded; all access is withdrawn."),
    "change_grant_ended": Text("已收回 {username} 的临时授权,之前签发的令牌已失效。",
                               "{username}'s temporary grant was ended; tokens issued before are refused."),
    "change_roles_set": Text("角色已更新。", "The roles were changed."),
    "change_grant_made": Text("临时授权已生效。", "The temporary grant is in effect."),
    "field_user": Text("人员", "Person"),
    "field_since": Text("起始", "Since"),
    "field_until": Text("截止", "Until"),
    "field_module": Text("模块", "Module"),
    "field_verb": Text("动作", "Verb"),
    "field_resource_id": Text("资源编号", "Resource id"),
    "field_warehouse": Text("仓库", "Warehouse"),
    "field_channel": Text("渠道", "Channel"),
    "field_decision": Text("结果", "Decision"),
    "field_client_ip": Text("IP", "IP"),
    "field_device_id": Text("设备", "Device"),
    "field_approval_id": Text("审批单", "Approval"),
    "field_role": Text("角色", "Role"),
    "verdict_allowed": Text("允许", "allowed"),
    "verdict_denied": Text("拒绝 ({status})", "denied ({status})"),
    "why_hidden": Text("资源不存在或不在您的数据范围内",
                       "the resource does not exist or lies outside your data scope"),
    "alert_open": Text("未处理", "Open"),
    "alert_acknowledged": Text("处理中", "Acknowledged"),
    "alert_resolved": Text("已解决", "Resolved"),
    "alert_all": Text("全部", "All"),
    "severity_critical": Text("严重", "critical"),
    "severity_high": Text("高", "high"),
    "severity_medium": Text("中", "medium"),
    "severity_low": Text("低", "low"),
    "alert_acknowledge": Text("确认处理", "Acknowledge"),
    "alert_resolve": Text("解决", "Resolve"),
    "alert_acknowledged_done": Text("已确认,重复出现的同一告警会计入此条,不再另行通知。",
                                    "Acknowledged: repeats are counted on it, not sent again."),
    "alert_resolved_done": Text("已解决;再次出现时会产生新告警。", "Resolved: if it happens again, a new alert opens."),
    "approval_decided": Text("决定", "decided"),
    "approval_withdrawn": Text("撤回", "withdrawn"),
    # audit queries (proxy/management/audit.py): what is wrong with a parameter
    "query_not_integer": Text("必须是整数", "must be an integer"),
    "query_out_of_range": Text("必须在 {low} 到 {high} 之间", "must be between {low} and {high}"),
    "review_closed_at_deadline": Text("访问复核「{title}」已到期结束,撤销 {revoked} 项,失败 {failed} 项",
                                      "access review {title!r} closed at its deadline: {revoked} item(s) revoked, "
                                      "{failed} failed"),
    "audit_exported_locally": Text("在本机用命令行导出审计日志(直接读取数据库)",
                                   "audit trail exported with the local command line (read from the database)"),
    "review_close_completed": Text("访问复核「{title}」由 {by} 发起结束,进程中断后由网关完成:"
                                   "撤销 {revoked} 项,失败 {failed} 项",
                                   "access review {title!r}: the close {by} started was interrupted and completed by "
                                   "the gateway: {revoked} item(s) revoked, {failed} failed"),
    "export_approval_pending": Text("状态为 {status}(尚未批准)", "is {status}, not approved"),
    "export_approval_grew": Text("批准时为 {approved} 行,现有 {rows} 行;请重新申请",
                                 "was approved for {approved} rows and the export now has {rows}: ask again"),
    "export_approval_used": Text("已下载过(每张审批单只能下载一次)", "was already downloaded (once per approval)"),
    "export_approval_lapsed": Text("已过下载期限 {until}", "could be used until {until}"),
    "export_approval_other": Text("批准的是另一个导出请求({line})", "approved another export ({line})"),
    "export_over_rows": Text("超过 {limit} 行", "more than {limit} rows"),
    "export_unmasked_pii": Text("含未脱敏的个人信息({fields})", "unmasked personal data ({fields})"),
    "review_retried": Text("访问复核「{title}」结束时失败的撤销已重试成功 {revoked} 项",
                           "access review {title!r}: {revoked} revocation(s) that failed at its close now done"),
    "review_title": Text("title 须为 1 到 200 个字符", "title must be 1 to 200 characters"),
    "review_target": Text("warehouse 与 role 须且只能填一个", "give exactly one of warehouse and role"),
    "review_days": Text("days 须为 1 到 {high} 的整数", "days must be a whole number from 1 to {high}"),
    "review_deadline": Text("deadline_hours 须在 {low} 到 {high} 之间",
                            "deadline_hours must be from {low} to {high}"),
    "review_unreviewed": Text("unreviewed 只能是 revoke 或 keep", "unreviewed must be revoke or keep"),
    "review_decision": Text("decision 只能是 keep 或 revoke", "decision must be keep or revoke"),
    "review_note": Text("note 至多 {high} 个字符", "note must be at most {high} characters"),
    "query_not_flag": Text("只能是 0 或 1", "must be 0 or 1"),
    "query_not_time": Text("应为 ISO 8601 时间或 30m/1h/2d", "must be an ISO 8601 time or 30m/1h/2d"),
    "query_repeated": Text("重复", "given more than once"),
    "query_unknown": Text("不支持的参数", "unknown parameter"),
    "query_bad_text": Text("不能为空且不超过 256 个字符", "must be non-empty and at most 256 characters"),
    "query_bad_decision": Text("只能是 allow 或 deny", "must be allow or deny"),
    "query_since_after_until": Text("必须早于 until", "must be before until"),
    "query_bad_format": Text("只能是 csv 或 jsonl", "must be csv or jsonl"),
})


class CatalogError(Exception):
    """An error whose answer is a :data:`CATALOG` entry.

    Args:
        key: the entry.
        params: the values its messages name.

    Attributes:
        key, params: as given.
        status: the HTTP status; code: the code clients get; zh, en: the filled-in messages.

    Raises:
        KeyError: ``key`` is not in the catalog, or a value its messages name is missing (a bug).
    """

    def __init__(self, key: str, /, **params: Any) -> None:
        message = CATALOG[key]
        self.key, self.params = key, params
        self.status, self.code = message.status, message.code or key
        self.zh, self.en = message.zh.format(**params), message.en.format(**params)
        super().__init__(self.en)
