#include "control/service.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

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

grpc::Status Service::Write(const char* method, const absl::Status& st) {
  // In synchronous pair mode a write returns once the standby applied it.
  if (st.ok() && pair_) return Reply(method, pair_->WaitReplicated());
  return Reply(method, st);
}

grpc::Status Service::ComparePair(grpc::ServerContext*, const v1::ComparePairRequest*,
                                  v1::ComparePairResponse* resp) {
  if (!pair_) return Reply("ComparePair", absl::FailedPreconditionError("this node has no pair"));
  auto r = pair_->Compare();
  if (r.ok()) *resp = *r;
  return Reply("ComparePair", r.status());
}

grpc::Status Service::Switchover(grpc::ServerContext*, const v1::SwitchoverRequest* req,
                                 v1::SwitchoverResponse* resp) {
  if (!pair_) return Reply("Switchover", absl::FailedPreconditionError("this node has no pair"));
  auto r = pair_->Switchover(req->force());
  if (r.ok()) *resp = *r;
  return Reply("Switchover", r.status());
}

grpc::Status Service::LostWrites(grpc::ServerContext*, const v1::LostWritesRequest*,
                                 v1::LostWritesResponse* resp) {
  if (!pair_) return Reply("LostWrites", absl::FailedPreconditionError("this node has no pair"));
  *resp = pair_->LostWrites();
  return Reply("LostWrites", absl::OkStatus());
}

std::string Service::RenderMetrics() const {
  std::string o =
      "# HELP tandem_api_calls_total API calls by method and result code\n"
      "# TYPE tandem_api_calls_total counter\n";
  absl::MutexLock lock(&mu_);
  for (const auto& [key, n] : calls_) {
    absl::StrAppend(&o, "tandem_api_calls_total{method=\"", key.first, "\",code=\"",
                    absl::StatusCodeToString(static_cast<absl::StatusCode>(key.second)), "\"} ", n,
                    "\n");
  }
  return o;
}

grpc::Status Service::GetStatus(grpc::ServerContext*, const v1::GetStatusRequest* req,
                                v1::NodeStatus* resp) {
  return Reply("GetStatus", core_.GetStatus(*req, resp));
}
grpc::Status Service::CreateSite(grpc::ServerContext*, const v1::CreateSiteRequest* req,
                                 v1::Site* resp) {
  return Write("CreateSite", core_.CreateSite(*req, resp));
}
grpc::Status Service::GetSite(grpc::ServerContext*, const v1::GetSiteRequest* req, v1::Site* resp) {
  return Reply("GetSite", core_.GetSite(*req, resp));
}
grpc::Status Service::ListSites(grpc::ServerContext*, const v1::ListSitesRequest* req,
                                v1::ListSitesResponse* resp) {
  return Reply("ListSites", core_.ListSites(*req, resp));
}
grpc::Status Service::UpdateSite(grpc::ServerContext*, const v1::UpdateSiteRequest* req,
                                 v1::Site* resp) {
  return Write("UpdateSite", core_.UpdateSite(*req, resp));
}
grpc::Status Service::DeleteSite(grpc::ServerContext*, const v1::DeleteSiteRequest* req,
                                 v1::DeleteSiteResponse* resp) {
  return Write("DeleteSite", core_.DeleteSite(*req, resp));
}
grpc::Status Service::ScheduleMeeting(grpc::ServerContext*, const v1::ScheduleMeetingRequest* req,
                                      v1::Meeting* resp) {
  return Write("ScheduleMeeting", core_.ScheduleMeeting(*req, resp));
}
grpc::Status Service::StartMeeting(grpc::ServerContext*, const v1::StartMeetingRequest* req,
                                   v1::Meeting* resp) {
  return Write("StartMeeting", core_.StartMeeting(*req, resp));
}
grpc::Status Service::EndMeeting(grpc::ServerContext*, const v1::EndMeetingRequest* req,
                                 v1::Meeting* resp) {
  return Write("EndMeeting", core_.EndMeeting(*req, resp));
}
grpc::Status Service::GetMeeting(grpc::ServerContext*, const v1::GetMeetingRequest* req,
                                 v1::Meeting* resp) {
  return Reply("GetMeeting", core_.GetMeeting(*req, resp));
}
grpc::Status Service::ListMeetings(grpc::ServerContext*, const v1::ListMeetingsRequest* req,
                                   v1::ListMeetingsResponse* resp) {
  return Reply("ListMeetings", core_.ListMeetings(*req, resp));
}
grpc::Status Service::UpdateMeeting(grpc::ServerContext*, const v1::UpdateMeetingRequest* req,
                                    v1::Meeting* resp) {
  return Write("UpdateMeeting", core_.UpdateMeeting(*req, resp));
}
grpc::Status Service::Join(grpc::ServerContext*, const v1::JoinRequest* req,
                           v1::JoinResponse* resp) {
  return Write("Join", core_.Join(*req, resp));
}
grpc::Status Service::Leave(grpc::ServerContext*, const v1::LeaveRequest* req,
                            v1::LeaveResponse* resp) {
  return Write("Leave", core_.Leave(*req, resp));
}
grpc::Status Service::SetRole(grpc::ServerContext*, const v1::SetRoleRequest* req,
                              v1::Participant* resp) {
  return Write("SetRole", core_.SetRole(*req, resp));
}
grpc::Status Service::SetMute(grpc::ServerContext*, const v1::SetMuteRequest* req,
                              v1::SetMuteResponse* resp) {
  return Write("SetMute", core_.SetMute(*req, resp));
}
grpc::Status Service::ListParticipants(grpc::ServerContext*, const v1::ListParticipantsRequest* req,
                                       v1::ListParticipantsResponse* resp) {
  return Reply("ListParticipants", core_.ListParticipants(*req, resp));
}
grpc::Status Service::ListLegs(grpc::ServerContext*, const v1::ListLegsRequest* req,
                               v1::ListLegsResponse* resp) {
  return Reply("ListLegs", core_.ListLegs(*req, resp));
}
grpc::Status Service::GetUsage(grpc::ServerContext*, const v1::GetUsageRequest* req,
                               v1::GetUsageResponse* resp) {
  return Reply("GetUsage", core_.GetUsage(*req, resp));
}

grpc::Status Service::Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                            grpc::ServerWriter<v1::Change>* writer) {
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
    absl::Status st = log.Read(next, 512, absl::Milliseconds(200), &batch);
    if (absl::IsCancelled(st)) break;  // shutting down
    if (!st.ok()) return Reply("Watch", st);
    // No buffer_hint: a sync Write with it waits for a flush that never comes.
    for (const v1::Change& c : batch) {
      if (!writer->Write(c)) return Reply("Watch", absl::OkStatus());
      next = c.seq() + 1;
    }
  }
  return Reply("Watch", absl::OkStatus());
}

}  // namespace tandem::control
