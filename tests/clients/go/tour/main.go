// A short tour of SWR's API beyond the page's sample, through the official Go SDK:
// organizations, repositories, tags, manual sync, sync records, rules. Each step prints one
// JSON line that tests/test_sdk_go.py reads; an SDK error prints its status and code.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	swr "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/swr/v2"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/swr/v2/model"
	region "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/swr/v2/region"
)

func main() {
	namespace, repository := os.Getenv("TOUR_NAMESPACE"), os.Getenv("TOUR_REPOSITORY")
	remoteRegion := os.Getenv("TOUR_REMOTE_REGION_ID")
	auth := basic.NewCredentialsBuilder().
		WithAk(os.Getenv("CLOUD_SDK_AK")).
		WithSk(os.Getenv("CLOUD_SDK_SK")).
		WithProjectId(os.Getenv("CLOUD_SDK_PROJECT_ID")).
		Build()
	client := swr.NewSwrClient(swr.SwrClientBuilder().
		WithRegion(region.ValueOf(os.Getenv("TOUR_REGION_ID"))).
		WithCredential(auth).
		Build())
	out := map[string]any{"step": os.Args[1]}
	err := run(client, os.Args[1:], namespace, repository, remoteRegion, out)
	var failure *sdkerr.ServiceResponseError
	switch {
	case err == nil:
		out["ok"] = true
	case errors.As(err, &failure):
		out["ok"] = false
		out["status"] = failure.StatusCode
		out["errorCode"] = failure.ErrorCode
		out["errorMsg"] = failure.ErrorMessage
		out["requestId"] = failure.RequestId
	default:
		out["ok"] = false
		out["error"] = err.Error()
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}

func run(client *swr.SwrClient, args []string, namespace, repository, remoteRegion string, out map[string]any) error {
	switch args[0] {
	case "setup":
		if _, err := client.CreateNamespace(&model.CreateNamespaceRequest{
			Body: &model.CreateNamespaceRequestBody{Namespace: namespace}}); err != nil {
			return err
		}
		category := model.GetCreateRepoRequestBodyCategoryEnum().LINUX
		if _, err := client.CreateRepo(&model.CreateRepoRequest{Namespace: namespace,
			Body: &model.CreateRepoRequestBody{Repository: repository, IsPublic: false, Category: &category}}); err != nil {
			return err
		}
		shown, err := client.ShowNamespace(&model.ShowNamespaceRequest{Namespace: namespace})
		if err != nil {
			return err
		}
		out["namespace"] = *shown.Name
	case "again":
		_, err := client.CreateNamespace(&model.CreateNamespaceRequest{
			Body: &model.CreateNamespaceRequestBody{Namespace: namespace}})
		return err
	case "tags":
		tags, err := client.ListRepositoryTags(&model.ListRepositoryTagsRequest{Namespace: namespace, Repository: repository})
		if err != nil {
			return err
		}
		names := []string{}
		if tags.Body != nil {
			for _, tag := range *tags.Body {
				names = append(names, tag.Tag)
			}
		}
		out["tags"] = names
	case "sync":
		synced, err := client.CreateManualImageSyncRepo(&model.CreateManualImageSyncRepoRequest{
			Namespace: namespace, Repository: repository,
			Body: &model.CreateManualImageSyncRepoRequestBody{
				ImageTag: strings.Split(args[1], ","), RemoteNamespace: namespace, RemoteRegionId: remoteRegion}})
		if err != nil {
			return err
		}
		failed := []string{}
		if synced.Body != nil {
			failed = *synced.Body
		}
		out["failed"] = failed
	case "jobs":
		jobs, err := client.ShowSyncJob(&model.ShowSyncJobRequest{Namespace: namespace, Repository: repository,
			Filter: "limit::100|offset::0|order::asc"})
		if err != nil {
			return err
		}
		found := []map[string]string{}
		if jobs.Body != nil {
			for _, job := range *jobs.Body {
				found = append(found, map[string]string{"tag": job.Tag, "status": job.Status, "remoteRegionId": job.RemoteRegionId})
			}
		}
		out["jobs"] = found
		if jobs.ContentRange != nil {
			out["contentRange"] = *jobs.ContentRange
		}
	case "rules":
		rules, err := client.ListImageAutoSyncReposDetails(&model.ListImageAutoSyncReposDetailsRequest{
			Namespace: namespace, Repository: repository})
		if err != nil {
			return err
		}
		count := 0
		if rules.Body != nil {
			count = len(*rules.Body)
		}
		out["rules"] = count
	case "delete-rule":
		_, err := client.DeleteImageSyncRepo(&model.DeleteImageSyncRepoRequest{Namespace: namespace, Repository: repository,
			Body: &model.DeleteImageSyncRepoRequestBody{RemoteRegionId: remoteRegion, RemoteNamespace: namespace}})
		return err
	default:
		return fmt.Errorf("unknown step %s", args[0])
	}
	return nil
}
