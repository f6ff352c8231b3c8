#include "control/service.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "control/metrics.h"

namespace tandem::control {

grpc::Status Service::Reply(const char* method, const absl::Status& st) {
  {
    absl::MutexLock lock(&mu_);
    calls_[{method, static_cast<int>(st.code())}]++;
  }
  if (st.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(st.code()), std::string(st.message()));
}

grpc::Status Service::Allow(grpc::ServerContext* ctx, const char* method, bool force) {
  Caller caller = IdentifyCaller(*ctx, unix_socket_);
  ApiRole has = roles_.RoleOf(caller);
  ApiRole needs = RequiredRole(method, force);
  if (has >= needs) return grpc::Status::OK;
  return Reply(method, absl::PermissionDeniedError(absl::StrCat(
                           method, force ? " with force" : "", " needs the ", ApiRoleName(needs),
                           " role; ", caller.Describe(), " has ",
                           has == ApiRole::kNone ? "no role" : ApiRoleName(has),
                           " ([api.roles], docs/control.md)")));
}

grpc::Status Service::Write(const char* method, const absl::Status& st) {
  // In synchronous pair mode a write returns once the standby applied it.
  if (st.ok() && pair_) return Reply(method, pair_->WaitReplicated());
  return Reply(method, st);
}

grpc::Status Service::ComparePair(grpc::ServerContext* ctx, const v1::ComparePairRequest*,
                                  v1::ComparePairResponse* resp) {
  if (grpc::Status a = Allow(ctx, "ComparePair"); !a.ok()) return a;
  if (!pair_) return Reply("ComparePair", absl::FailedPreconditionError("this node has no pair"));
  auto r = pair_->Compare();
  if (r.ok()) *resp = *r;
  return Reply("ComparePair", r.status());
}

grpc::Status Service::Switchover(grpc::ServerContext* ctx, const v1::SwitchoverRequest* req,
                                 v1::SwitchoverResponse* resp) {
  if (grpc::Status a = Allow(ctx, "Switchover", req->force()); !a.ok()) return a;
  if (!pair_) return Reply("Switchover", absl::FailedPreconditionError("this node has no pair"));
  auto r = pair_->Switchover(req->force());
  if (r.ok()) *resp = *r;
  return Reply("Switchover", r.status());
}

grpc::Status Service::LostWrites(grpc::ServerContext* ctx, const v1::LostWritesRequest*,
                                 v1::LostWritesResponse* resp) {
  if (grpc::Status a = Allow(ctx, "LostWrites"); !a.ok()) return a;
  if (!pair_) return Reply("LostWrites", absl::FailedPreconditionError("this node has no pair"));
  *resp = pair_->LostWrites();
  return Reply("LostWrites", absl::OkStatus());
}

grpc::Status Service::AcknowledgeLostWrites(grpc::ServerContext* ctx,
                                            const v1::AcknowledgeLostWritesRequest*,
                                            v1::LostWritesResponse* resp) {
  if (grpc::Status a = Allow(ctx, "AcknowledgeLostWrites"); !a.ok()) return a;
  if (!pair_) {
    return Reply("AcknowledgeLostWrites", absl::FailedPreconditionError("this node has no pair"));
  }
  auto r = pair_->AcknowledgeLostWrites();
  if (r.ok()) *resp = *r;
  return Reply("AcknowledgeLostWrites", r.status());
}

std::string Service::RenderMetrics() const {
  MetricsText m;
  m.Declare("tandem_api_calls_total", "API calls by method and result code", true);
  absl::MutexLock lock(&mu_);
  for (const auto& [key, n] : calls_) {
    m.Counter("tandem_api_calls_total", "", double(n),
              {{"method", key.first},
               {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(key.second))}});
  }
  return m.Serialize();
}

grpc::Status Service::GetStatus(grpc::ServerContext* ctx, const v1::GetStatusRequest* req,
                                v1::NodeStatus* resp) {
  if (grpc::Status a = Allow(ctx, "GetStatus"); !a.ok()) return a;
  absl::Status st = core_.GetStatus(*req, resp);
  if (st.ok() && pair_) pair_->FillStatus(resp->mutable_pair());
  return Reply("GetStatus", st);
}
grpc::Status Service::CreateSite(grpc::ServerContext* ctx, const v1::CreateSiteRequest* req,
                                 v1::Site* resp) {
  if (grpc::Status a = Allow(ctx, "CreateSite"); !a.ok()) return a;
  return Write("CreateSite", core_.CreateSite(*req, resp));
}
grpc::Status Service::GetSite(grpc::ServerContext* ctx, const v1::GetSiteRequest* req, v1::Site* resp) {
  if (grpc::Status a = Allow(ctx, "GetSite"); !a.ok()) return a;
  return Reply("GetSite", core_.GetSite(*req, resp));
}
grpc::Status Service::ListSites(grpc::ServerContext* ctx, const v1::ListSitesRequest* req,
                                v1::ListSitesResponse* resp) {
  if (grpc::Status a = Allow(ctx, "ListSites"); !a.ok()) return a;
  return Reply("ListSites", core_.ListSites(*req, resp));
}
grpc::Status Service::UpdateSite(grpc::ServerContext* ctx, const v1::UpdateSiteRequest* req,
                                 v1::Site* resp) {
  if (grpc::Status a = Allow(ctx, "UpdateSite"); !a.ok()) return a;
  return Write("UpdateSite", core_.UpdateSite(*req, resp));
}
grpc::Status Service::DeleteSite(grpc::ServerContext* ctx, const v1::DeleteSiteRequest* req,
                                 v1::DeleteSiteResponse* resp) {
  if (grpc::Status a = Allow(ctx, "DeleteSite"); !a.ok()) return a;
  return Write("DeleteSite", core_.DeleteSite(*req, resp));
}
grpc::Status Service::ScheduleMeeting(grpc::ServerContext* ctx, const v1::ScheduleMeetingRequest* req,
                                      v1::Meeting* resp) {
  if (grpc::Status a = Allow(ctx, "ScheduleMeeting"); !a.ok()) return a;
  return Write("ScheduleMeeting", core_.ScheduleMeeting(*req, resp));
}
grpc::Status Service::StartMeeting(grpc::ServerContext* ctx, const v1::StartMeetingRequest* req,
                                   v1::Meeting* resp) {
  if (grpc::Status a = Allow(ctx, "StartMeeting"); !a.ok()) return a;
  return Write("StartMeeting", core_.StartMeeting(*req, resp));
}
grpc::Status Service::EndMeeting(grpc::ServerContext* ctx, const v1::EndMeetingRequest* req,
                                 v1::Meeting* resp) {
  if (grpc::Status a = Allow(ctx, "EndMeeting"); !a.ok()) return a;
  return Write("EndMeeting", core_.EndMeeting(*req, resp));
}
grpc::Status Service::GetMeeting(grpc::ServerContext* ctx, const v1::GetMeetingRequest* req,
                                 v1::Meeting* resp) {
  if (grpc::Status a = Allow(ctx, "GetMeeting"); !a.ok()) return a;
  return Reply("GetMeeting", core_.GetMeeting(*req, resp));
}
grpc::Status Service::ListMeetings(grpc::ServerContext* ctx, const v1::ListMeetingsRequest* req,
                                   v1::ListMeetingsResponse* resp) {
  if (grpc::Status a = Allow(ctx, "ListMeetings"); !a.ok()) return a;
  return Reply("ListMeetings", core_.ListMeetings(*req, resp));
}
grpc::Status Service::UpdateMeeting(grpc::ServerContext* ctx, const v1::UpdateMeetingRequest* req,
                                    v1::Meeting* resp) {
  if (grpc::Status a = Allow(ctx, "UpdateMeeting"); !a.ok()) return a;
  return Write("UpdateMeeting", core_.UpdateMeeting(*req, resp));
}
grpc::Status Service::Join(grpc::ServerContext* ctx, const v1::JoinRequest* req,
                           v1::JoinResponse* resp) {
  if (grpc::Status a = Allow(ctx, "Join"); !a.ok()) return a;
  return Write("Join", core_.Join(*req, resp));
}
grpc::Status Service::Leave(grpc::ServerContext* ctx, const v1::LeaveRequest* req,
                            v1::LeaveResponse* resp) {
  if (grpc::Status a = Allow(ctx, "Leave"); !a.ok()) return a;
  return Write("Leave", core_.Leave(*req, resp));
}
grpc::Status Service::SetRole(grpc::ServerContext* ctx, const v1::SetRoleRequest* req,
                              v1::Participant* resp) {
  if (grpc::Status a = Allow(ctx, "SetRole"); !a.ok()) return a;
  return Write("SetRole", core_.SetRole(*req, resp));
}
grpc::Status Service::SetMute(grpc::ServerContext* ctx, const v1::SetMuteRequest* req,
                              v1::SetMuteResponse* resp) {
  if (grpc::Status a = Allow(ctx, "SetMute"); !a.ok()) return a;
  return Write("SetMute", core_.SetMute(*req, resp));
}
grpc::Status Service::ListParticipants(grpc::ServerContext* ctx, const v1::ListParticipantsRequest* req,
                                       v1::ListParticipantsResponse* resp) {
  if (grpc::Status a = Allow(ctx, "ListParticipants"); !a.ok()) return a;
  return Reply("ListParticipants", core_.ListParticipants(*req, resp));
}
grpc::Status Service::ListLegs(grpc::ServerContext* ctx, const v1::ListLegsRequest* req,
                               v1::ListLegsResponse* resp) {
  if (grpc::Status a = Allow(ctx, "ListLegs"); !a.ok()) return a;
  return Reply("ListLegs", core_.ListLegs(*req, resp));
}
grpc::Status Service::GetUsage(grpc::ServerContext* ctx, const v1::GetUsageRequest* req,
                               v1::GetUsageResponse* resp) {
  if (grpc::Status a = Allow(ctx, "GetUsage"); !a.ok()) return a;
  return Reply("GetUsage", core_.GetUsage(*req, resp));
}

grpc::Status Service::Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                            grpc::ServerWriter<v1::Change>* writer) {
  if (grpc::Status a = Allow(ctx, "Watch"); !a.ok()) return a;
  ChangeLog& log = core_.changes();
  if (req->log_id() != 0 && req->log_id() != log.log_id()) {
    return Reply("Watch", absl::OutOfRangeError(
                              absl::StrCat("log ", req->log_id(), " is not the current log ",
                                           log.log_id(), " (the daemon restarted): resync")));
  }
  uint64_t next = req->from_seq() != 0 ? req->from_seq() : log.last_seq() + 1;
  if (next > log.last_seq() + 1) {
    return Reply("Watch", absl::InvalidArgumentError(absl::StrCat(
                              "from_seq ", next, " is beyond the last change ", log.last_seq())));
  }
  std::vector<v1::Change> batch;
  const uint64_t log_id = log.log_id();
  while (!ctx->IsCancelled()) {
    batch.clear();
    if (log.log_id() != log_id) {
      // A standby that resynced from another log: what follows is not the
      // continuation of what this stream delivered.
      return Reply("Watch", absl::UnavailableError(
                                "this node now follows another change log: resume the watch on "
                                "the active node"));
    }
    // `next` goes past the log's records that are no changes too.
    absl::Status st = log.Read(next, 512, absl::Milliseconds(200), &batch, &next);
    if (absl::IsCancelled(st)) break;  // shutting down
    if (!st.ok()) return Reply("Watch", st);
    // No buffer_hint: a sync Write with it waits for a flush that never comes.
    for (const v1::Change& c : batch) {
      if (!writer->Write(c)) return Reply("Watch", absl::OkStatus());
    }
  }
  return Reply("Watch", absl::OkStatus());
}

}  // namespace tandem::control
