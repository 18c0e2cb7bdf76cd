// A short tour of SWR's API beyond the page's sample, through the official Java SDK:
// organizations, repositories, tags, manual sync, sync records, rules. Each step prints one
// JSON line that tests/test_sdk_java.py reads; an SDK error prints its status and code.
package ferry.tour;

import com.huaweicloud.sdk.core.auth.BasicCredentials;
import com.huaweicloud.sdk.core.exception.ServiceResponseException;
import com.huaweicloud.sdk.core.utils.JsonUtils;
import com.huaweicloud.sdk.swr.v2.SwrClient;
import com.huaweicloud.sdk.swr.v2.model.*;
import com.huaweicloud.sdk.swr.v2.region.SwrRegion;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public class Tour {

    public static void main(String[] args) {
        String namespace = System.getenv("TOUR_NAMESPACE");
        String repository = System.getenv("TOUR_REPOSITORY");
        String remoteRegion = System.getenv("TOUR_REMOTE_REGION_ID");
        SwrClient client = SwrClient.newBuilder()
                .withCredential(new BasicCredentials()
                        .withAk(System.getenv("CLOUD_SDK_AK"))
                        .withSk(System.getenv("CLOUD_SDK_SK"))
                        .withProjectId(System.getenv("CLOUD_SDK_PROJECT_ID")))
                .withRegion(SwrRegion.valueOf(System.getenv("TOUR_REGION_ID")))
                .build();
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("step", args[0]);
        try {
            switch (args[0]) {
                case "setup" -> {
                    client.createNamespace(new CreateNamespaceRequest()
                            .withBody(new CreateNamespaceRequestBody().withNamespace(namespace)));
                    client.createRepo(new CreateRepoRequest().withNamespace(namespace)
                            .withBody(new CreateRepoRequestBody().withRepository(repository)
                                    .withIsPublic(false)
                                    .withCategory(CreateRepoRequestBody.CategoryEnum.LINUX)));
                    ShowNamespaceResponse shown = client.showNamespace(new ShowNamespaceRequest().withNamespace(namespace));
                    out.put("namespace", shown.getName());
                }
                case "again" -> client.createNamespace(new CreateNamespaceRequest()
                        .withBody(new CreateNamespaceRequestBody().withNamespace(namespace)));
                case "tags" -> {
                    ListRepositoryTagsResponse tags = client.listRepositoryTags(
                            new ListRepositoryTagsRequest().withNamespace(namespace).withRepository(repository));
                    List<String> names = new ArrayList<>();
                    for (ShowReposTagResp tag : tags.getBody()) {
                        names.add(tag.getTag());
                    }
                    out.put("tags", names);
                }
                case "sync" -> {
                    CreateManualImageSyncRepoResponse synced = client.createManualImageSyncRepo(
                            new CreateManualImageSyncRepoRequest().withNamespace(namespace).withRepository(repository)
                                    .withBody(new CreateManualImageSyncRepoRequestBody()
                                            .withImageTag(List.of(args[1].split(",")))
                                            .withRemoteNamespace(namespace)
                                            .withRemoteRegionId(remoteRegion)));
                    out.put("failed", synced.getBody() == null ? List.of() : synced.getBody());
                }
                case "jobs" -> {
                    ShowSyncJobResponse jobs = client.showSyncJob(new ShowSyncJobRequest()
                            .withNamespace(namespace).withRepository(repository)
                            .withFilter("limit::100|offset::0|order::asc"));
                    List<Map<String, Object>> found = new ArrayList<>();
                    for (SyncJob job : jobs.getBody() == null ? List.<SyncJob>of() : jobs.getBody()) {
                        found.add(Map.of("tag", job.getTag(), "status", job.getStatus(),
                                "remoteRegionId", job.getRemoteRegionId()));
                    }
                    out.put("jobs", found);
                    out.put("contentRange", jobs.getContentRange());
                }
                case "rules" -> {
                    ListImageAutoSyncReposDetailsResponse rules = client.listImageAutoSyncReposDetails(
                            new ListImageAutoSyncReposDetailsRequest().withNamespace(namespace).withRepository(repository));
                    out.put("rules", rules.getBody() == null ? 0 : rules.getBody().size());
                }
                case "delete-rule" -> client.deleteImageSyncRepo(new DeleteImageSyncRepoRequest()
                        .withNamespace(namespace).withRepository(repository)
                        .withBody(new DeleteImageSyncRepoRequestBody()
                                .withRemoteRegionId(remoteRegion).withRemoteNamespace(namespace)));
                default -> throw new IllegalArgumentException("unknown step " + args[0]);
            }
            out.put("ok", true);
        } catch (ServiceResponseException e) {
            out.put("ok", false);
            out.put("status", e.getHttpStatusCode());
            out.put("errorCode", e.getErrorCode());
            out.put("errorMsg", e.getErrorMsg());
            out.put("requestId", e.getRequestId());
        }
        System.out.println(JsonUtils.toJSON(out));
    }
}
